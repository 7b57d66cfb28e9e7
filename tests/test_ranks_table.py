"""`lowrank-edge ranks` prints one aligned table, whatever the layer names' length."""

from types import SimpleNamespace

from lowrank_edge.cli.ranks_cmd import plan_table


def row(layer: str, status: str, rank: int | None) -> SimpleNamespace:
    macs = None if rank is None else 1000
    return SimpleNamespace(layer=layer, status=status, rank=rank, full_rank=16,
                           macs_before=macs, macs_after=macs, params_after=macs,
                           predicted_error=None if rank is None else 0.01)  # fmt: skip


def test_columns_stay_aligned_for_long_keras_applications_names():
    rows = [
        row("conv", "factorised", 4),
        row("expanded_conv_3_squeeze_excite_conv_1", "kept: dense within the budget", 16),
        row("expanded_conv_depthwise", "kept: unsupported (DepthwiseConv2D)", None),
    ]
    totals = dict(macs_before=3000, macs_after=2000, macs_kept=0.667, params_before=3000,
                  params_after=2000, params_kept=0.667)  # fmt: skip
    lines = plan_table(rows, totals).splitlines()[:4]
    rank_ends = {line.index("rank") + 4 for line in lines[:1]}
    rank_ends |= {line.index("/16") + 3 for line in lines[1:3]}
    assert len(rank_ends) == 1, "\n".join(lines)  # the rank column ends at one place
    assert len({len(line) for line in lines}) == 1, "\n".join(lines)  # every row as wide
