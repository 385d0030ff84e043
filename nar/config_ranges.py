"""The allowed values of config keys: the range of every numeric key, checked when a config is read
(:func:`nar.config.load_config`): (low, high, low excluded, high excluded); None = unbounded."""

AUGMENTS = ("none", "topo")  # the values of the key `augment` (nar/augment.py)
SEED_MAX = 2 ** 32 - 1  # numpy's and LightGBM's generators take 32-bit seeds

# Range of every numeric key: (low, high, low excluded, high excluded); None = unbounded.
_AT_LEAST_1 = (1, None, False, False)
_AT_LEAST_0 = (0, None, False, False)
_POSITIVE = (0, None, True, False)
_FRACTION = (0, 1, False, False)
_SIZE = (1, 1 << 16, False, False)      # model widths and counts: beyond this, memory runs out
_MANY = (1, 10 ** 7, False, False)      # per-iteration sample counts
RANGES = {
    "seed": (0, SEED_MAX, False, False), "max_edges": _AT_LEAST_1, "train_size": _AT_LEAST_1,
    "val_size": _AT_LEAST_0, "data_loader_workers": _AT_LEAST_0, "batch_size": _AT_LEAST_1,
    "train_batch_size": _AT_LEAST_1, "val_batch_size": _AT_LEAST_1, "start_epochs": _AT_LEAST_0,
    "ranker_epochs": _AT_LEAST_1, "sampler_epochs": _AT_LEAST_0, "validate_freq": _AT_LEAST_1,
    "bins": (2, 10_000, False, False), "loss_factor": _AT_LEAST_0, "swa_epochs": _AT_LEAST_0,
    "n_ensemble": (1, 1000, False, False), "batches_per_epoch": _AT_LEAST_0, "tta_orders": (0, 1000, False, False),
    "ranker.n_tier": (2, None, False, False), "ranker.n_arch_patch": _SIZE,
    "ranker.d_patch": _SIZE, "ranker.d_patch_vec": _SIZE, "ranker.d_model": _SIZE,
    "ranker.d_ffn_inner": _SIZE, "ranker.d_tier_prj_inner": _SIZE,
    "ranker.n_layers": _SIZE, "ranker.n_head": _SIZE, "ranker.d_k": _SIZE,
    "ranker.d_v": _SIZE, "ranker.dropout": (0, 1, False, True), "ranker.structure_aux": _AT_LEAST_0,
    "ranker.n_position": (1, 1 << 20, False, False),
    "ranker.d_val_acc_prj_inner": _SIZE, "ranker.op_onehot": (0, 256, False, False),
    "optimizer.beta1": (0, 1, False, True), "optimizer.beta2": (0, 1, False, True),
    "optimizer.eps": _POSITIVE, "optimizer.weight_decay": _AT_LEAST_0,
    "lr_scheduler.lr_mul": _POSITIVE, "lr_scheduler.n_warmup_steps": _AT_LEAST_1,
    "sampler.top_tier": _AT_LEAST_1, "sampler.last_tier": _AT_LEAST_1,
    "sampler.batch_factor": _FRACTION, "sampler.reuse_step": _MANY,
    "sampler.max_trails": _MANY, "sampler.noisy_factor": _FRACTION,
    "sampler.flops_kl_thred": _AT_LEAST_0, "sampler.params_kl_thred": _AT_LEAST_0,
    "sampler.edges_kl_thred": _AT_LEAST_0, "sampler.sample_size": _MANY,
    "sampler.search_size": _MANY, "sampler.top_k": _MANY,
    "sampler.strict_lookups": _MANY, "sampler.strict_iterations": _AT_LEAST_0,
    "sampler.strict_val_margin": _AT_LEAST_0, "sampler.kl_eps": _POSITIVE,
    "sampler.population": (2, 10 ** 7, False, False), "sampler.tournament": _AT_LEAST_1,
    "sampler.init_size": _MANY, "sampler.query_step": _MANY,
    "sampler.finetune_epochs": _AT_LEAST_0, "sampler.acquisition_kappa": (None, None, False, False),
    "sampler.surrogate_epochs": _AT_LEAST_1, "sampler.surrogate_swa_epochs": _AT_LEAST_0,
    "sampler.surrogate_batch_size": _AT_LEAST_1, "sampler.surrogate_ensemble": (1, 1000, False, False),
    "sampler.surrogate_batches_per_epoch": _AT_LEAST_0, "sampler.query_step_growth": _AT_LEAST_0,
    "pretrain.steps": (0, 10 ** 7, False, False), "pretrain.cells": _MANY,
    "pretrain.batch_size": _SIZE, "pretrain.lr": _POSITIVE, "pretrain.seed": (0, SEED_MAX, False, False),
    "distill.cells": (0, 10 ** 8, False, False), "distill.epochs": _AT_LEAST_1,
    "distill.batch_size": _SIZE, "distill.lr": _POSITIVE, "distill.seed": (0, SEED_MAX, False, False),
}
