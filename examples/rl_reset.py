#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Reset a simulation to a saved state by rollback instead of deepcopy.

A reinforcement-learning loop runs many short episodes from the same
saved state. The usual Python way keeps a pristine copy of the
environment and restores it with copy.deepcopy() at every reset, which
costs the whole state each time. With the state in a cowarena arena, the
reset is a rollback to a snapshot: it restores only the pages the episode
wrote.

The environment: a 16 MiB world (a 2048 x 2048 grid of uint32 cells:
terrain, items) plus a few agents. An episode moves the agents for 200
steps; each step writes the cells they visit. The same episode code runs
on both states (a NumPy array when NumPy is installed, else a memoryview
of uint32), so only the reset differs. Every reset is checked: the state
after it equals the saved one.

usage: rl_reset.py [EPISODES]   (default 40)
Run from a source tree after `make`, or set COWARENA_LIB.
"""

import array
import copy
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "python"))
import cowarena  # noqa: E402

try:
    import numpy
except ImportError:
    numpy = None

SIDE = 2048
CELLS = SIDE * SIDE             # 4 Mi cells, 16 MiB
AGENTS = 4
STEPS = 200
WORDS = CELLS + 2 * AGENTS      # the grid, then each agent's x and y


def generate(state, seed=1):
    """A level: terrain values everywhere, agents placed at random."""
    rng = random.Random(seed)
    if numpy is not None:
        state[:CELLS] = numpy.arange(CELLS, dtype=numpy.uint32) % 7
    else:
        row = array.array("I", [i % 7 for i in range(SIDE)])
        raw = state.cast("B")
        for y in range(SIDE):
            raw[y * SIDE * 4:(y + 1) * SIDE * 4] = row.tobytes()
    for i in range(AGENTS):
        state[CELLS + 2 * i] = rng.randrange(SIDE)
        state[CELLS + 2 * i + 1] = rng.randrange(SIDE)


def episode(state, rng):
    """Random walks: each step an agent moves and marks its cell."""
    reward = 0
    for _ in range(STEPS):
        for i in range(AGENTS):
            x = int(state[CELLS + 2 * i])
            y = int(state[CELLS + 2 * i + 1])
            d = rng.randrange(4)
            x = (x + (1, -1, 0, 0)[d]) % SIDE
            y = (y + (0, 0, 1, -1)[d]) % SIDE
            c = y * SIDE + x
            reward += int(state[c])
            state[c] = 100 + i
            state[CELLS + 2 * i] = x
            state[CELLS + 2 * i + 1] = y
    return reward


def make_plain():
    if numpy is not None:
        return numpy.zeros(WORDS, dtype=numpy.uint32)
    return memoryview(bytearray(WORDS * 4)).cast("I")


class Plain:
    """The deepcopy baseline: a pristine copy restored at each reset."""

    def __init__(self):
        if numpy is not None:
            self.saved = numpy.zeros(WORDS, dtype=numpy.uint32)
            generate(self.saved)
        else:
            # memoryviews cannot be deep-copied: keep an array.array
            self.saved = array.array("I", bytes(WORDS * 4))
            generate(memoryview(self.saved))
        self.state = None

    def reset(self):
        self.state = copy.deepcopy(self.saved)
        return self.state if numpy is not None else memoryview(self.state)


class Cow:
    """The same state in an arena: reset = rollback to a snapshot."""

    def __init__(self):
        page = os.sysconf("SC_PAGE_SIZE")
        size = (WORDS * 4 + page - 1) // page * page
        self.arena = cowarena.Arena(size=size)
        if numpy is not None:
            self.state = self.arena.numpy("uint32")[:WORDS]
        else:
            self.state = self.arena.memory().cast("I")[:WORDS]
        generate(self.state)
        # The level becomes the arena's base (in memory: an anonymous
        # arena's commit), so the snapshot and each rollback cost only
        # the pages an episode wrote.
        self.arena.commit()
        self.saved = self.arena.snapshot()

    def reset(self):
        self.arena.rollback(self.saved)
        return self.state

    def close(self):
        self.saved.release()
        self.state = None  # the views go before the arena closes
        self.arena.close()


def same(a, b):
    if numpy is not None:
        return numpy.array_equal(a, b)
    return a.tobytes() == b.tobytes()


def run(env, episodes, pristine):
    t_reset = 0.0
    rewards = []
    rng = random.Random(42)
    t_start = time.perf_counter()
    for _ in range(episodes):
        t0 = time.perf_counter()
        state = env.reset()
        t_reset += time.perf_counter() - t0
        if not same(state[CELLS:], pristine[CELLS:]):
            raise SystemExit("reset left the agents moved")
        rewards.append(episode(state, rng))
    t_all = time.perf_counter() - t_start
    state = env.reset()
    if not same(state, pristine):
        raise SystemExit("the final reset did not restore the saved state")
    return t_reset / episodes, t_all / episodes, rewards


def main():
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    plain = Plain()
    pristine = plain.saved if numpy is not None else memoryview(plain.saved)
    cow = Cow()
    print("state: %d MiB world (%s), %d agents x %d steps per episode, "
          "%d episodes" % (WORDS * 4 >> 20,
                           "numpy array" if numpy is not None
                           else "memoryview", AGENTS, STEPS, episodes))
    t_plain, all_plain, r_plain = run(plain, episodes, pristine)
    t_cow, all_cow, r_cow = run(cow, episodes, pristine)
    if r_plain != r_cow:
        raise SystemExit("the two runs diverged")
    episode(cow.reset(), random.Random(7))  # one more, to count its pages
    st = cow.arena.stats()
    cow.reset()
    print("reset by copy.deepcopy:      %8.3f ms" % (t_plain * 1e3))
    print("reset by cowarena rollback:  %8.3f ms  (%.0fx faster; pages "
          "written by an episode: %d of %d)"
          % (t_cow * 1e3, t_plain / t_cow if t_cow else 0,
             st.dirty_pages, st.size // st.page_size))
    print("whole episode (reset + %d steps): deepcopy %.3f ms, rollback "
          "%.3f ms" % (STEPS, all_plain * 1e3, all_cow * 1e3))
    print("every reset checked: state equal to the saved one; "
          "rewards identical in both runs")
    cow.close()


if __name__ == "__main__":
    main()
