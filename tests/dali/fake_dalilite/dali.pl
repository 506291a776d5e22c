#!/usr/bin/env python3
"""Stand-in for DaliLite.v5 dali.pl (which cannot be installed here) for the tests only.

It takes the command line DPAM uses, keeps DaliLite's working-directory rules (dali.lock, refuses an
existing mol1A.dccp, 80-character paths, no hits for a blank chain), aligns with the real TMalign and
writes mol1A.txt in DaliLite's pairwise format: upper case = structurally equivalent (TM-align ':').
Z is a stand-in number (10 x TM-score). FAKE_DALI_LOG, if set, gets one line "cwd argv" per call.
FAKE_DALI_DELAY, if set, is the seconds each call takes at least (DaliLite takes seconds to minutes).
"""
import os
import subprocess
import sys
import time

time.sleep(float(os.environ.get("FAKE_DALI_DELAY", "0")))
args = sys.argv[1:]
opts = {args[i].lstrip("-").lower(): args[i + 1] for i in range(0, len(args) - 1, 2)}
if os.environ.get("FAKE_DALI_LOG"):
    with open(os.environ["FAKE_DALI_LOG"], "a") as log:
        log.write(os.getcwd() + " " + " ".join(args) + "\n")
if os.path.exists("dali.lock"):
    sys.exit("Directory is locked by dali.lock")
if os.path.exists("mol1A.dccp"):
    sys.exit("mol1A.dccp exists: delete or rename it")
for key in ("pdbfile1", "pdbfile2"):
    if len(opts[key]) > 80:
        sys.exit(f"path longer than 80 characters: {opts[key]}")
open("dali.lock", "w").close()
open("mol1A.dccp", "w").close()
chain = next((line[21] for line in open(opts["pdbfile1"]) if line.startswith("ATOM")), " ")
out = ["# Job: test", "# Query: mol1A", "# No:  Chain   Z    rmsd lali nres  %id PDB  Description"]
if chain != " ":
    res = subprocess.run(
        ["TMalign", opts["pdbfile2"], opts["pdbfile1"], "-m", "m.txt"], capture_output=True, text=True, check=True
    )
    lines = res.stdout.splitlines()
    tm = next(float(l.split()[1]) for l in lines if l.startswith("TM-score=") and "Chain_1" in l)
    i = next(i for i, l in enumerate(lines) if l.startswith('(":" denotes'))
    t, marks, q = lines[i + 1], lines[i + 2].ljust(len(lines[i + 1])), lines[i + 3]
    if tm >= 0.5:
        z = round(10 * tm, 1)
        qa = "".join(c if m == ":" else c.lower() for c, m in zip(q, marks))
        sa = "".join(c if m == ":" else c.lower() for c, m in zip(t, marks))
        rows = [l.split() for l in open("m.txt") if l.split()[:1] in (["1"], ["2"], ["3"])]
        out += [f"   1:  mol2-A {z:4.1f}  1.0  100   100   50   FAKE", "", "# Pairwise alignments", ""]
        out += [f"No 1: Query=mol1A Sbjct=mol2A Z-score={z:.1f}", ""]
        for s in range(0, len(qa), 60):
            out += [f"DSSP  {'L' * len(qa[s:s + 60])}", f"Query {qa[s:s + 60]}   60", "ident", f"Sbjct {sa[s:s + 60]}   60", ""]
        out += ["", "# Translation-rotation matrices"]
        for k, r in enumerate(rows, 1):
            out.append(f'-matrix  "mol1-A mol2-A  U({k},.)  {float(r[2]):9.6f} {float(r[3]):9.6f} {float(r[4]):9.6f}   {float(r[1]):12.6f}"')
with open("mol1A.txt", "w") as handle:
    handle.write("\n".join(out) + "\n")
os.unlink("dali.lock")
