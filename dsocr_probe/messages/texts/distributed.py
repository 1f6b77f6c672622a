"""The distributed probe: the run on N processes, and the FSDP / DeepSpeed settings read before it."""

from ..catalog import NP_, N_, Text, define

# ---------------------------------------------------------------- before the launch

_OFF_FIX = N_("Pass `--dsocr-nproc N` (ini `dsocr_nproc`), or put `nproc_per_node: N` at the top of the training "
              "config, to run the step on N processes as `torchrun --nproc_per_node N` would.")
define("distributed.off", {
    "one-process": Text(N_("Not run: one process"), fix=_OFF_FIX),
    "no-world-size": Text(N_("Not run: no world size asked for"), fix=_OFF_FIX),
})

define("distributed.not-launched", Text(
    N_("Not run: the FSDP / DeepSpeed settings above fail first"),
    fix=N_("Correct them, then run again."),
))

define("distributed.gpus", Text(
    N_("Not run: %(nproc)d processes asked for, %(have)d GPUs visible"),
    fix=N_("Run on a machine with %(nproc)d GPUs, or pass `--dsocr-nproc %(have)d` (or `--dsocr-device cpu` for a "
           "gloo run)."),
))

define("distributed.deepspeed-not-installed", Text(
    N_("DeepSpeed is not installed: its step was not run (the checks above were)"),
    detail=N_("The N-process step ran under plain DDP, with `deepspeed` removed for it."),
    fix=N_("`pip install deepspeed` on the training machine and run again to run ZeRO itself."),
))

# What a rank could not build, as the cause of ``distributed.prerequisite``.
_BUILD_FIX = N_("See the step probe, which builds the same run and names the fix.")
define("distributed.build-failed", {
    "call": Text(N_("%(what)s fails: %(error)s"), fix=_BUILD_FIX),
    "collator": Text(N_("The collator `%(spec)s` fails: %(error)s"), fix=_BUILD_FIX),
    "builder": Text(N_("The verified batch builder fails: %(error)s"), fix=_BUILD_FIX),
})

# ---------------------------------------------------------------- the launch

define("distributed.left-running", Text(
    NP_("%(count)d process of the run survived its end", "%(count)d processes of the run survived its end", "count"),
    detail=N_("pids: %(pids)s"),
    fix=N_("End them (`kill -9 <pid>`); this is a bug of the probe, please report it."),
))

define("distributed.ranks", Text(
    N_("%(world)d ranks (%(backend)s) started and finished %(steps)d optimizer steps each"),
))

define("distributed.unused-parameters", Text(
    N_("DDP stops at the second step on rank %(rank)d: Expected to have finished reduction in the prior iteration "
       "before starting a new one"),
    detail="%(quote)s",  # DDP's own message: data, not words
    fix=N_("Set `ddp_find_unused_parameters: true` in the training section (DDP then looks for them every step, at "
           "the cost of one more pass over the autograd graph), or take LoRA off the modules that get no gradient "
           "(listed below)."),
))

define("distributed.fsdp-cpu", Text(
    N_("FSDP could not run on the CPU (gloo) here: %(error)s"),
    detail=N_("The static FSDP checks above still hold; the sharded step needs GPUs (NCCL)."),
    fix=N_("Run the probe with `--dsocr-nproc N` on the GPU machine."),
))

_TIMEOUT_DETAIL = N_("Each rank's last step is in the table; a rank that stops while the others wait in a collective "
                     "(all-reduce) hangs the whole run. Every process of it was ended.")
_TIMEOUT_FIX = N_("Look at that rank's log (run with `-s`); raise --dsocr-timeout if the machine is only slow.")
define("distributed.rank-timeout", {
    "where-waited": Text(N_("The %(world)d-process run did not finish within %(limit)g s: rank %(ranks)s stopped in "
                            "%(where)s, the others wait for it"), detail=_TIMEOUT_DETAIL, fix=_TIMEOUT_FIX),
    "where": Text(N_("The %(world)d-process run did not finish within %(limit)g s: rank %(ranks)s stopped in "
                     "%(where)s"), detail=_TIMEOUT_DETAIL, fix=_TIMEOUT_FIX),
    "waited": Text(NP_("The %(world)d-process run did not finish within %(limit)g s: rank %(ranks)s stopped, the "
                       "others wait for it",
                       "The %(world)d-process run did not finish within %(limit)g s: ranks %(ranks)s stopped, the "
                       "others wait for them", "stuck"), detail=_TIMEOUT_DETAIL, fix=_TIMEOUT_FIX),
    "stopped": Text(NP_("The %(world)d-process run did not finish within %(limit)g s: rank %(ranks)s stopped",
                        "The %(world)d-process run did not finish within %(limit)g s: ranks %(ranks)s stopped",
                        "stuck"), detail=_TIMEOUT_DETAIL, fix=_TIMEOUT_FIX),
})

define("distributed.launch-failed", Text(
    N_("torch.distributed.run did not start the ranks (exit %(returncode)s)"),
    detail="%(log)s",  # the launcher's output: data, not words
    fix=N_("Read the launcher's message above; check that this torch has torch.distributed."),
))

_RANK_FAILED_FIX = N_("The launcher's report above names the rank and its exit; a rank killed by a signal (exit code "
                      "-9) ran out of memory or was ended from outside. Fix what it names and run again.")
define("distributed.rank-failed", {
    "error": Text(N_("Rank %(rank)d failed: %(error)s"), detail="%(report)s", fix=_RANK_FAILED_FIX),
    "exitcode": Text(N_("Rank %(rank)d failed: exit code %(exitcode)d"), detail="%(report)s", fix=_RANK_FAILED_FIX),
    "stopped": Text(N_("Rank %(rank)d failed: it stopped"), detail="%(report)s", fix=_RANK_FAILED_FIX),
    "no-rank": Text(N_("The run failed (launcher exit %(returncode)s) and no rank says why"), detail="%(report)s",
                    fix=_RANK_FAILED_FIX),
})

# ---------------------------------------------------------------- what the ranks did

define("distributed.in-sync", Text(
    NP_("The %(count)d adapter tensor's gradient after DDP's sync and its updated weight agree on all %(world)d ranks",
        "The %(count)d adapter tensors' gradients after DDP's sync and their updated weights agree on all %(world)d "
        "ranks", "count"),
))

_SYNC_DETAIL = N_("DDP all-reduces every gradient, so all ranks must hold the same numbers; they do not: a parameter "
                  "DDP does not manage, or code that changes weights on one rank only.")
_SYNC_FIX = N_("Do not change parameters or requires_grad after the Trainer is made; keep `modules_to_save` and the "
               "LoRA targets the same on every rank.")
define("distributed.out-of-sync", {
    "differs": Text(N_("The ranks disagree: %(name)s's %(what)s differs on rank %(rank)d (relative difference "
                       "%(gap)s)"), detail=_SYNC_DETAIL, fix=_SYNC_FIX),
    "one-rank": Text(N_("The ranks disagree: %(name)s's %(what)s is present on some ranks only (rank %(rank)d)"),
                     detail=_SYNC_DETAIL, fix=_SYNC_FIX),
})

define("distributed.all-used", {
    "used": Text(N_("Every adapter got a gradient on every rank")),
    "flag-unneeded": Text(N_("Every adapter got a gradient on every rank; `ddp_find_unused_parameters` could be false "
                             "(DDP then skips its search each step)")),
})

define("distributed.no-gradient-modules", Text(
    NP_("%(count)d adapted module got no gradient on some rank",
        "%(count)d adapted modules got no gradient on some rank", "count"),
    detail="%(modules)s",  # module names: data
    fix=N_("These are what DDP waited for: MoE experts no token of that rank's batch was routed to, or modules off "
           "the loss's path."),
))

_UNUSED_DETAIL = N_("%(modules)s. With the flag, DDP walks the autograd graph after every forward to find them: one "
                    "more pass per step, and no overlap of their gradients' communication with the backward.")
_UNUSED_FIX = N_("Keep `ddp_find_unused_parameters: true` while these are adapted; MoE routing changes per batch, so "
                 "removing the flag stops the run at the next step where a rank routes around an expert.")
define("distributed.unused-found", {
    "experts": Text(NP_("%(count)d adapted module got no gradient on some rank (in %(experts)d MoE experts no token "
                        "was routed to); DDP handles it because `ddp_find_unused_parameters` is true",
                        "%(count)d adapted modules got no gradient on some rank (in %(experts)d MoE experts no token "
                        "was routed to); DDP handles them because `ddp_find_unused_parameters` is true", "count"),
                    detail=_UNUSED_DETAIL, fix=_UNUSED_FIX),
    "modules": Text(NP_("%(count)d adapted module got no gradient on some rank; DDP handles it because "
                        "`ddp_find_unused_parameters` is true",
                        "%(count)d adapted modules got no gradient on some rank; DDP handles them because "
                        "`ddp_find_unused_parameters` is true", "count"),
                    detail=_UNUSED_DETAIL, fix=_UNUSED_FIX),
})

define("distributed.rank-empty", Text(
    NP_("%(rows)d rows on %(world)d ranks at batch %(batch)d: rank %(ranks)s gets no batch",
        "%(rows)d rows on %(world)d ranks at batch %(batch)d: ranks %(ranks)s get no batch", "empty"),
    fix=N_("Use at least %(want)d training rows, a smaller `per_device_train_batch_size`, or "
           "`dataloader_drop_last: false`."),
))

define("distributed.rows-short", Text(
    N_("%(rows)d rows on %(world)d ranks at batch %(batch)d: one step wants %(want)d, so the sampler repeats rows to "
       "fill the ranks"),
    detail=N_("Each rank's share of one epoch is in the table (%(repeated)d rows are repeats)."),
    fix=N_("Lower `per_device_train_batch_size` to %(fit)d or add training rows."),
))

define("distributed.rows", {
    "even": Text(N_("%(rows)d rows over %(world)d ranks: %(per_rank)d per rank per epoch")),
    "even-repeats": Text(N_("%(rows)d rows over %(world)d ranks: %(per_rank)d per rank per epoch (%(repeats)d "
                            "repeated to even out the ranks)")),
    "uneven": Text(N_("%(rows)d rows over %(world)d ranks, per epoch by rank: %(shares)s")),
    "uneven-repeats": Text(N_("%(rows)d rows over %(world)d ranks, per epoch by rank: %(shares)s (%(repeats)d "
                              "repeated to even out the ranks)")),
})

define("distributed.effective-batch-large", Text(
    N_("Effective batch %(batch)d per device x %(accumulation)d accumulation x %(world)d ranks = %(effective)d, more "
       "than the %(rows)d training rows"),
    detail=N_("Every optimizer step repeats rows, and an epoch is one step: the learning-rate schedule and "
              "`num_train_epochs` count far fewer updates than on one process."),
    fix=N_("Lower `gradient_accumulation_steps` or `per_device_train_batch_size` so that the effective batch is at "
           "most %(rows)d."),
))

define("distributed.effective-batch", Text(
    NP_("Effective batch %(batch)d per device x %(accumulation)d accumulation x %(world)d ranks = %(effective)d: "
        "%(steps)d optimizer step per epoch",
        "Effective batch %(batch)d per device x %(accumulation)d accumulation x %(world)d ranks = %(effective)d: "
        "%(steps)d optimizer steps per epoch", "steps"),
))

define("distributed.fsdp-not-applied", Text(
    N_("FSDP was not applied here: the Trainer wrapped the model in %(wrapper)s on %(backend)s"),
    detail=N_("accelerate turns FSDP on only for GPUs and other accelerators, not for processes on the CPU: the step "
              "ran under plain DDP. The FSDP settings were read and checked above."),
    fix=N_("Run the probe with `--dsocr-nproc N` on the GPU machine to run the sharded step itself."),
))

define("distributed.in-sync-sharded", Text(N_("Gradients are sharded by %(wrapper)s: not compared across ranks")))
