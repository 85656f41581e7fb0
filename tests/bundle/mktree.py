#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Deterministic random file trees for round-trip tests.

mktree.py DIR SEED [--small N] [--sparse-gib G]
Makes odd names (spaces, quotes, newlines, leading dashes, unicode, emoji),
empty files, executable bits, nested directories, internal symlinks, N small
files, and optionally one sparse file of G GiB with a few data islands.
"""
import os, random, sys

def main():
    root, seed = sys.argv[1], int(sys.argv[2])
    small = 0
    sparse = 0.0
    args = sys.argv[3:]
    while args:
        if args[0] == "--small":
            small = int(args[1]); args = args[2:]
        elif args[0] == "--sparse-gib":
            sparse = float(args[1]); args = args[2:]
        else:
            sys.exit("unknown option " + args[0])
    rnd = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    odd = ["plain.txt", "with space", "quote\"s'", "new\nline", "-leading-dash", "ünïcödé.bin",
           "日本語のファイル", "emoji-🚀.dat", "tab\tname", "back\\slash", "%s%n", ".hidden", "a" * 200]
    dirs = [root]
    for i in range(6):
        d = os.path.join(rnd.choice(dirs), "dir-%d-%s" % (i, rnd.choice(["α", "b", "c c", "ß"])))
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    for name in odd:
        p = os.path.join(rnd.choice(dirs), name)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(rnd.choice([0, 1, 100, 4096, 70000, 300000])))
        os.chmod(p, rnd.choice([0o644, 0o755, 0o600, 0o444, 0o700]))
    for i in range(3):
        p = os.path.join(rnd.choice(dirs), "empty-%d" % i)
        open(p, "wb").close()
    # Text that compresses, across chunk boundaries.
    with open(os.path.join(root, "text.log"), "w") as f:
        for i in range(60000):
            f.write("line %d: the quick brown fox %d\n" % (i, rnd.randint(0, 99)))
    os.makedirs(os.path.join(root, "empty-dir"), exist_ok=True)
    os.chmod(os.path.join(root, "empty-dir"), 0o750)
    os.symlink("plain.txt" if os.path.exists(os.path.join(root, "plain.txt")) else "text.log",
               os.path.join(root, "link-inside"))
    os.symlink("../text.log", os.path.join(dirs[1], "up-link"))
    if small:
        sd = os.path.join(root, "many")
        os.makedirs(sd, exist_ok=True)
        for i in range(small):
            with open(os.path.join(sd, "f%05d" % i), "wb") as f:
                f.write(rnd.randbytes(rnd.randint(0, 200)))
    if sparse:
        p = os.path.join(root, "sparse.img")
        size = int(sparse * (1 << 30))
        with open(p, "wb") as f:
            f.truncate(size)
            for off in (0, size // 3, size - 5000):
                f.seek(off)
                f.write(rnd.randbytes(5000))

main()
