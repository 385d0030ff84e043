"""Configuration of search by sampling (the release's ``sampler.*`` keys plus a few of ours)."""
from dataclasses import dataclass


@dataclass
class SamplerConfig:
    # --- the release's keys (kept with its defaults and spelling) ---
    top_tier: int = 1
    last_tier: int = 4
    batch_factor: float = 0.1
    reuse_step: int = 25
    max_trails: int = 100  # the release's spelling of "max trials"; kept for its configs
    noisy_factor: float = 0.5
    flops_kl_thred: float = 2.5
    params_kl_thred: float = 2.5
    edges_kl_thred: float = 1.5
    sample_size: int = 256
    search_size: int = 256
    force_uniform: bool = False
    is_checkpoint: bool = True
    # --- ours ---
    iterations: int = 0         # search iterations; 0 = the release's rule, sampler_epochs - ranker_epochs
    top_k: int = 5              # candidates reported per iteration (predicted tier 1, by score)
    strict_lookups: int = 50     # strict protocol: best-predicted distinct candidates looked up
    strict_iterations: int = 0   # ... taken from this many last iterations (0 = all of them)
    strict_val_margin: float = 0.1  # strict pick: cells within this many points of the best
                                    # validation accuracy are tied; a ranker's score decides
    strict_pick_rule: str = "search_first"  # search_first: tied searched cells (never trained on)
                                    # first, best score (nar.search.search_first_pick); heldout_margin:
                                    # tied cells scored by a ranker refitted without the tied training
                                    # cells; search_margin: training cells compete by validation
                                    # accuracy only; val: best validation accuracy; margin_score:
                                    # version 1 (the search ranker's score over all tied cells)
    kl_eps: float = 1e-3        # additive smoothing of histograms before the KL divergence
    # regularised evolution (baseline)
    population: int = 64
    tournament: int = 16
    # query-efficient (iterative) mode
    init_size: int = 24         # architectures queried at random before the first fit
    query_step: int = 8         # top predictions queried per round (at least)
    finetune_epochs: int = 0    # >0: fine-tune the previous model this many epochs; 0: retrain
    acquisition_kappa: float = 0.0  # query z(score) + kappa * z(ensemble disagreement)
    surrogate_epochs: int = 60      # NAR surrogate: training epochs per round
    surrogate_swa_epochs: int = 20  # ... weight average of the last epochs
    surrogate_batch_size: int = 32
    surrogate_ensemble: int = 1     # ensemble members (>1 gives the disagreement)
    surrogate_batches_per_epoch: int = 4  # larger training sets: bigger batches, not more steps
    query_step_growth: float = 0.05  # a round queries max(query_step, growth * queries so far)
    skip_equivalent: bool = True  # never query a cell that is the same network as a queried one
                                  # (SearchSpace.equivalence_codes; NB201: docs/search_results.md)
