"""bench.media's model of the wall time with K nodes: slices placed longest first on identical nodes."""

from bench.media import makespan


def test_given_equal_slices_then_k_nodes_take_the_ceiling_of_their_share() -> None:
    assert makespan([10.0] * 6, 1) == 60.0
    assert makespan([10.0] * 6, 4) == 20.0
    assert makespan([10.0] * 6, 8) == 10.0


def test_given_unequal_slices_then_longest_first_balances_them() -> None:
    assert makespan([9.0, 7.0, 6.0, 5.0, 4.0, 1.0], 2) == 17.0  # 9+5+1 | 7+6+4: a heuristic, 16 is optimal
