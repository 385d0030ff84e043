"""Configuration of search by sampling (the release's ``sampler.*`` keys)."""
from dataclasses import dataclass


@dataclass
class SamplerConfig:
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
