"""The auction: the rule on small cases, and exact agreement with a plain loop on random ones."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from axo.coordination import Agent, Auctioneer, Task
from axo.coordination import auction as auction_module
from axo.errors import UsageError
from tests.coordination import reference

PROPERTY = settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])

# the smallest auction (agents × tasks) each path is forced from
PATHS = {"numpy": sys.maxsize, "compiled": 0}


@contextmanager
def forced(path: str) -> Iterator[None]:
    """Auctions in the block take ``path`` whatever their size."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auction_module, "_COMPILED_FROM", PATHS[path])
        yield


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once on each path."""
    with forced(request.param):
        yield request.param


BOTH_PATHS = pytest.mark.usefixtures("path")


def agent(
    name: str,
    caps: str = "",
    budget: float = 1000.0,
    load: float = 0.0,
    capacity: float = 4.0,
    initial: float | None = None,
) -> Agent:
    return Agent(
        name,
        frozenset(caps.split()),
        budget=budget,
        initial_budget=initial,
        load=load,
        capacity=capacity,
    )


def task(caps: str = "", tokens: float = 100.0, load: float = 1.0, name: str = "t") -> Task:
    return Task(name, frozenset(caps.split()), tokens=tokens, load=load)


@BOTH_PATHS
def test_the_highest_score_wins_and_its_load_and_budget_are_charged() -> None:
    auctioneer = Auctioneer([agent("busy", "web", load=3.0), agent("idle", "web")])
    result = auctioneer.auction([task("web", tokens=250.0)])
    assert result.winners.tolist() == [1]
    assert result.scores.tolist() == [1.0]  # 0.5 * (1 - 0/4) + 0.5 * (1000/1000)
    assert auctioneer.loads.tolist() == [3.0, 1.0]
    assert auctioneer.budgets.tolist() == [1000.0, 750.0]


@BOTH_PATHS
def test_only_agents_with_every_required_capability_may_bid() -> None:
    auctioneer = Auctioneer([agent("a", "web"), agent("b", "web code", load=2.0)])
    assert auctioneer.auction([task("web code")]).winners.tolist() == [1]


@BOTH_PATHS
def test_an_agent_short_of_budget_or_capacity_may_not_bid() -> None:
    auctioneer = Auctioneer(
        [
            agent("poor", "web", budget=50.0, initial=1000.0),
            agent("full", "web", load=4.0),
            agent("ok", "web", load=3.5),
        ]
    )
    assert auctioneer.auction([task("web", tokens=100.0, load=0.5)]).winners.tolist() == [2]


@BOTH_PATHS
def test_ties_go_to_the_lowest_agent_index() -> None:
    auctioneer = Auctioneer([agent("x", "a"), agent("y", "a b"), agent("z", "a b")])
    assert auctioneer.auction([task("b")]).winners.tolist() == [1]


@BOTH_PATHS
def test_each_award_is_charged_before_the_next_task_is_auctioned() -> None:
    auctioneer = Auctioneer([agent("a", "web"), agent("b", "web", load=1.0)])
    free = task("web", tokens=0.0)
    result = auctioneer.auction([free, free, free])
    assert result.winners.tolist() == [0, 0, 1]  # a wins; a and b tie, a wins; b has more room
    assert auctioneer.loads.tolist() == [2.0, 2.0]


@BOTH_PATHS
def test_a_task_nobody_can_take_is_reported_with_the_reason() -> None:
    auctioneer = Auctioneer([agent("a", "web", budget=100.0), agent("b", "code")])
    result = auctioneer.auction(
        [
            task("web", tokens=500.0),
            task("web code"),
            task("sql"),
            task("web", tokens=50.0),
        ]
    )
    assert result.winners.tolist() == [-1, -1, -1, 0]
    assert [(u.task, u.reason) for u in result.unassigned] == [
        (0, "all 1 capable agents lack budget (500 tokens) or capacity (1 load)"),
        (1, "no agent has all the required capabilities"),
        (2, "no agent has capability 'sql'"),
    ]
    assert [(a.task, a.agent) for a in result.awards] == [(3, 0)]


@BOTH_PATHS
def test_budgets_and_capacity_run_out_as_tasks_are_awarded() -> None:
    auctioneer = Auctioneer(
        [
            agent("thrifty", "x", budget=250.0, initial=1000.0, capacity=10.0),  # bids 0.625
            agent("small", "x", capacity=2.0),  # bids 1.0, then 0.7 after one task
        ]
    )
    result = auctioneer.auction([task("x", tokens=100.0, name=f"t{i}") for i in range(5)])
    assert result.winners.tolist() == [1, 1, 0, 0, -1]
    assert auctioneer.loads.tolist() == [2.0, 2.0]
    assert auctioneer.budgets.tolist() == [50.0, 800.0]
    assert [u.reason for u in result.unassigned] == [
        "all 2 capable agents lack budget (100 tokens) or capacity (1 load)"
    ]


@BOTH_PATHS
def test_an_auction_of_no_tasks_changes_nothing() -> None:
    auctioneer = Auctioneer([agent("a", "x", load=1.0)])
    result = auctioneer.auction([])
    assert result.winners.tolist() == [] and result.scores.tolist() == []
    assert result.awards == () and result.unassigned == ()
    assert auctioneer.loads.tolist() == [1.0]


@BOTH_PATHS
def test_more_than_64_capabilities_are_packed_into_several_words() -> None:
    caps = [f"tool{i:03d}" for i in range(130)]
    auctioneer = Auctioneer([agent("a", " ".join(caps[:70])), agent("b", " ".join(caps[70:]))])
    masks = auctioneer.capability_masks
    assert masks.shape == (2, 3) and masks.dtype == np.uint64
    assert masks[0].tolist() == [2**64 - 1, 2**6 - 1, 0]
    assert masks[1].tolist() == [0, 2**64 - 2**6, 2**2 - 1]
    assert auctioneer.auction([task(caps[69]), task(caps[129])]).winners.tolist() == [0, 1]


@BOTH_PATHS
def test_the_weights_decide_between_spare_load_and_remaining_budget() -> None:
    agents = [
        agent("rested", "x", load=0.0, budget=200.0, initial=1000.0),
        agent("rich", "x", load=2.0, budget=1000.0),
    ]
    assert Auctioneer(agents, w_load=1.0, w_budget=0.0).auction([task("x")]).winners.tolist() == [0]
    assert Auctioneer(agents, w_load=0.0, w_budget=1.0).auction([task("x")]).winners.tolist() == [1]


@BOTH_PATHS
def test_agent_state_stays_in_the_same_arrays_across_auctions() -> None:
    auctioneer = Auctioneer([agent("a", "x"), agent("b", "x")])
    before = auctioneer.loads
    auctioneer.auction([task("x")])
    after = auctioneer.loads
    assert np.shares_memory(before, after)
    assert before.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        before[0] = 5.0  # views handed out are read-only


@BOTH_PATHS
def test_release_lowers_the_load_and_raises_the_bid_again() -> None:
    auctioneer = Auctioneer([agent("a", "x", load=3.0), agent("b", "x", load=1.0)])
    auctioneer.release("a", 3.0)
    assert auctioneer.loads.tolist() == [0.0, 1.0]
    assert auctioneer.auction([task("x")]).winners.tolist() == [0]


@BOTH_PATHS
def test_statistics_count_auctions_tasks_and_awards() -> None:
    auctioneer = Auctioneer([agent("a", "x")])
    auctioneer.auction([task("x"), task("y")])
    auctioneer.auction([])
    stats = auctioneer.statistics()
    assert (stats.auctions, stats.tasks, stats.awarded, stats.unassigned) == (2, 2, 1, 1)
    assert stats.seconds > 0


@pytest.mark.parametrize(
    ("agents", "weights"),
    [
        ([agent("a", capacity=0.0)], {}),
        ([agent("a", budget=-1.0, initial=10.0)], {}),
        ([agent("a"), agent("a")], {}),
        ([agent("a")], {"w_load": -1.0}),
        ([agent("a")], {"w_budget": float("nan")}),
    ],
)
def test_impossible_agents_or_weights_are_refused(agents: list[Agent], weights: dict) -> None:
    with pytest.raises(UsageError):
        Auctioneer(agents, **weights)


@BOTH_PATHS
@pytest.mark.parametrize("bad", [task(tokens=-1.0), task(load=-0.5), task(tokens=float("nan"))])
def test_a_task_with_negative_tokens_or_load_is_refused(bad: Task) -> None:
    with pytest.raises(UsageError, match="must not be negative"):
        Auctioneer([agent("a")]).auction([task(), bad])


@BOTH_PATHS
def test_an_auctioneer_without_agents_reports_every_task() -> None:
    result = Auctioneer([]).auction([task("x"), task()])
    assert result.winners.tolist() == [-1, -1]
    assert [u.reason for u in result.unassigned] == [
        "no agent has capability 'x'",
        "no agent has all the required capabilities",
    ]


# --- agreement with the plain loop ---------------------------------------------------------


@st.composite
def markets(
    draw: st.DrawFn,
    min_agents: int = 0,
    max_agents: int = 70,
    vocab_sizes: tuple[int, ...] = (1, 3, 10, 70, 150),
) -> tuple[list[Agent], list[Task]]:
    vocab = [f"c{i}" for i in range(draw(st.sampled_from(vocab_sizes)))]
    caps = st.frozensets(st.sampled_from(vocab), max_size=min(len(vocab), 12))
    few = st.sampled_from  # few distinct values, so that scores tie often
    bidder = st.tuples(
        caps, few([0.0, 100.0, 250.0, 1000.0]), few([0.0, 0.5, 1.0, 2.0]), few([2.0, 3.0])
    )
    agents = [
        Agent(f"a{i}", c, budget=b, initial_budget=1000.0, load=load, capacity=cap)
        for i, (c, b, load, cap) in enumerate(
            draw(st.lists(bidder, min_size=min_agents, max_size=max_agents))
        )
    ]
    need = st.frozensets(st.sampled_from([*vocab, "unknown"]), max_size=3)
    job = st.tuples(need, few([0.0, 50.0, 100.0, 300.0]), few([0.5, 1.0]))
    tasks = [
        Task(f"t{i}", n, tokens=tok, load=load)
        for i, (n, tok, load) in enumerate(draw(st.lists(job, max_size=60)))
    ]
    return agents, tasks


def matches_reference(
    agents: list[Agent], tasks: list[Task], w_load: float, w_budget: float
) -> None:
    """Each path gives the plain loop's winners, scores, loads and budgets, and the same
    reasons for the tasks nobody took."""
    expected = reference.auction(agents, tasks, w_load, w_budget)
    reasons = {}
    for path in PATHS:
        with forced(path):
            auctioneer = Auctioneer(agents, w_load=w_load, w_budget=w_budget)
            result = auctioneer.auction(tasks)
        assert result.winners.tolist() == expected.winners, path
        assert result.scores.tolist() == expected.scores, path
        assert auctioneer.loads.tolist() == expected.loads, path
        assert auctioneer.budgets.tolist() == expected.budgets, path
        assert [u.task for u in result.unassigned] == [
            i for i, w in enumerate(expected.winners) if w < 0
        ], path
        reasons[path] = [u.reason for u in result.unassigned]
    assert reasons["compiled"] == reasons["numpy"]


WEIGHTS = st.sampled_from([(0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.3, 0.7)])


@PROPERTY
@given(markets(), WEIGHTS)
def test_awards_and_final_state_match_the_plain_loop_exactly(
    market: tuple[list[Agent], list[Task]], weights: tuple[float, float]
) -> None:
    matches_reference(*market, *weights)


@PROPERTY
@given(markets(max_agents=30), WEIGHTS)
def test_the_ranked_shortcuts_match_the_plain_loop_when_every_path_is_forced(
    market: tuple[list[Agent], list[Task]], weights: tuple[float, float]
) -> None:
    # tiny thresholds send small markets through rounds, rankings and full evaluations
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auction_module, "_RARE", 1)
        mp.setattr(auction_module, "_PREFIX", 3)
        mp.setattr(auction_module, "_WINDOW", 4)
        mp.setattr(auction_module, "_FALLBACKS", 2)
        matches_reference(*market, *weights)


@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(markets(min_agents=50, max_agents=160, vocab_sizes=(1, 2, 4)), WEIGHTS)
def test_crowded_markets_taking_the_ranked_path_match_the_plain_loop(
    market: tuple[list[Agent], list[Task]], weights: tuple[float, float]
) -> None:
    matches_reference(*market, *weights)


@PROPERTY
@given(markets(), WEIGHTS, st.data())
def test_loads_and_budgets_carry_over_auctions_and_releases_whichever_path_runs_each(
    market: tuple[list[Agent], list[Task]], weights: tuple[float, float], data: st.DataObject
) -> None:
    agents, tasks = market
    split = data.draw(st.integers(0, len(tasks)), label="split")
    amounts = st.sampled_from([0.5, 1.0, 5.0])
    releases = data.draw(
        st.lists(st.tuples(st.integers(0, len(agents) - 1), amounts), max_size=5)
        if agents
        else st.just([]),
        label="releases",
    )
    first = reference.auction(agents, tasks[:split], *weights)
    loads = list(first.loads)
    for i, amount in releases:
        loads[i] = max(0.0, loads[i] - amount)
    after = [
        replace(
            a,
            load=loads[i],
            budget=first.budgets[i],
            initial_budget=a.budget if a.initial_budget is None else a.initial_budget,
        )
        for i, a in enumerate(agents)
    ]
    second = reference.auction(after, tasks[split:], *weights)
    for path_one, path_two in [(p, q) for p in PATHS for q in PATHS]:
        auctioneer = Auctioneer(agents, w_load=weights[0], w_budget=weights[1])
        with forced(path_one):
            one = auctioneer.auction(tasks[:split])
        for i, amount in releases:
            auctioneer.release(agents[i].name, amount)
        with forced(path_two):
            two = auctioneer.auction(tasks[split:])
        paths = (path_one, path_two)
        assert one.winners.tolist() == first.winners, paths
        assert one.scores.tolist() == first.scores, paths
        assert two.winners.tolist() == second.winners, paths
        assert two.scores.tolist() == second.scores, paths
        assert auctioneer.loads.tolist() == second.loads, paths
        assert auctioneer.budgets.tolist() == second.budgets, paths


# --- the compiled path's setting up ---------------------------------------------------------


def test_importing_axo_and_running_a_small_auction_leave_numba_unloaded() -> None:
    code = (
        "import sys, axo\n"
        "from axo.coordination import Agent, Auctioneer, Task\n"
        "bidder = Agent('a', frozenset({'x'}), budget=10.0)\n"
        "Auctioneer([bidder]).auction([Task('t', frozenset({'x'}))])\n"
        "print('numba' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["False"]


def test_a_big_auction_told_to_stay_in_numpy_leaves_numba_unloaded() -> None:
    """What a run actor's coordinator dispatch does: it must never wait for numba to load."""
    code = (
        "import sys\n"
        "from axo.coordination import Agent, Auctioneer, Task\n"
        "agents = [Agent(f'a{i}', frozenset({'x'}), budget=1e9, capacity=1e9)\n"
        "          for i in range(400)]\n"
        "tasks = [Task(f't{i}', frozenset({'x'}), tokens=1.0) for i in range(400)]\n"
        "result = Auctioneer(agents).auction(tasks, compiled=False)\n"
        "print(len(result.awards), 'numba' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.split() == ["400", "False"]


def test_the_path_can_be_chosen_and_both_agree() -> None:
    agents = [Agent(f"a{i}", frozenset({"x", f"c{i % 3}"}), budget=5_000.0) for i in range(30)]
    tasks = [Task(f"t{i}", frozenset({f"c{i % 4}"}), tokens=700.0) for i in range(40)]
    by_numpy = Auctioneer(agents).auction(tasks, compiled=False)
    by_kernel = Auctioneer(agents).auction(tasks, compiled=True)
    assert by_numpy.winners.tolist() == by_kernel.winners.tolist()
    assert by_numpy.scores.tolist() == by_kernel.scores.tolist()
    assert [u.reason for u in by_numpy.unassigned] == [u.reason for u in by_kernel.unassigned]


def _twice(x: int) -> int:
    return 2 * x


def test_the_kernel_compiles_in_memory_where_no_cache_directory_is_writable() -> None:
    from numba import njit
    from numba.core.caching import CacheImpl

    from axo.coordination import _auction_kernel

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CacheImpl, "_locator_classes", [])  # what numba finds in a read-only install
        with pytest.raises(RuntimeError, match="no locator available"):
            njit(cache=True)(_twice)
        assert _auction_kernel._jit(_twice)(21) == 42  # and no warning (warnings are errors)
