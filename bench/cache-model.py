#!/usr/bin/env python3
"""A model of the catalog cache's admission policy (Sources/CatalogSQL/ImageCache.swift) replaying
growth.sh's load at 1M images, to tell what share of its GETs the cache answers in each round.

    python3 bench/cache-model.py                       # 256 MiB, 20 s warm-up, a GET admitted on its first read
    python3 bench/cache-model.py --budget-mib 512
    python3 bench/cache-model.py --gets-doorkeeper     # a GET admitted on its second read (policy of 9ec91a6)
    python3 bench/cache-model.py --gets-doorkeeper --no-warmup --thin-gets   # the policy and method before 2026-12-06

What it models: two generations (a new entry goes to `young`; when `young` holds half the budget, `old`
is dropped and `young` becomes old; a hit in `old` is copied to `young`), the doorkeeper (a row enters
on its second read; it forgets after 131,072 first reads), and thinning (once a generation was dropped,
a window of 4,096 lookups that hit under half the time makes the next window admit one second read in
eight). A row read by id (a GET) passes both and is admitted on its first read. Every entry weighs 1.1 KiB (measured, bench/README "Fifth pass"). What it leaves out: the
doorkeeper's hash collisions, the read tickets, the first-page lists (25 rows the cache already holds).

The load, per growth.sh at 1M with the rates of its 2026-12-06 runs: GETs uniform over 100,000 ids
(13,000/s), then a marker walk (4,500 lists/s of 25 consecutive rows from a random place among 1M)
and creates (2,000/s, each cached by its write), 5 s each, for 3 rounds; before them, WARMUP s of GETs.
"""
import argparse
import random

ENTRY_MIB = 1.1 / 1024
SEEN_LIMIT = (1 << 20) // 8
WINDOW = 4096
THINNING = 8


class Cache:
    def __init__(self, budget_mib, thin_gets, gets_doorkeeper):
        self.half = budget_mib / 2
        self.thin_gets = thin_gets
        self.gets_doorkeeper = gets_doorkeeper
        self.young, self.old, self.young_mib = set(), set(), 0.0
        self.seen = set()
        self.lookups = self.hits = self.skipped = 0
        self.thinning = self.filled = False

    def insert(self, key):
        if key in self.young:
            return
        self.young.add(key)
        self.young_mib += ENTRY_MIB
        if self.young_mib >= self.half:
            self.old, self.young, self.young_mib, self.filled = self.young, set(), 0.0, True

    def read(self, key, by_id):
        """One read of `key`: True when the cache answered; a miss is admitted as the policy says."""
        self.lookups += 1
        if self.lookups == WINDOW:
            self.thinning = self.filled and self.hits * 2 < self.lookups
            self.lookups = self.hits = 0
        if key in self.young or key in self.old:
            self.hits += 1
            if key not in self.young:
                self.insert(key)
            return True
        if by_id and not self.gets_doorkeeper:
            self.insert(key)
            return False
        if key not in self.seen:
            self.seen.add(key)
            if len(self.seen) >= SEEN_LIMIT:
                self.seen.clear()
            return False
        if not self.thinning or (by_id and not self.thin_gets):
            self.insert(key)
        else:
            self.skipped += 1
            if self.skipped % THINNING == 0:
                self.insert(key)
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget-mib", type=float, default=256)
    ap.add_argument("--warmup", type=float, default=20, help="seconds of GETs before round 1")
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--thin-gets", action="store_true", help="thin GETs too, as before 2026-12-06")
    ap.add_argument("--gets-doorkeeper", action="store_true",
                    help="a GET enters on its second read, like a list's row (before the seventh pass)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    images = 1_000_000
    get_set = rng.sample(range(images), 100_000)
    cache = Cache(args.budget_mib, args.thin_gets, args.gets_doorkeeper)
    next_id = images

    def gets(n):
        return sum(cache.read(rng.choice(get_set), by_id=True) for _ in range(n)) / n

    if not args.no_warmup:
        print(f"warm-up  GET hits {gets(int(args.warmup * 13_000)):.0%}")
    for r in range(1, args.rounds + 1):
        print(f"round {r}  GET hits {gets(5 * 13_000):.0%}")
        for _ in range(5 * 4_500):
            start = rng.randrange(images - 25)
            for key in range(start, start + 25):
                cache.read(key, by_id=False)
        for _ in range(5 * 2_000):
            cache.insert(next_id)
            next_id += 1


if __name__ == "__main__":
    main()
