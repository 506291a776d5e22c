"""Unit tests of the dali package: parsers, the DPAM loop on real domains, cache, scratch, failures."""

import fcntl
import os
import time
from pathlib import Path

import pytest
from common import CommandError
from dali import example_inputs
from dali.aligners import Aligner, AlignerOutputError, dali_command, parse_dali_output, parse_tmalign_output
from dali.cache import TemplateCache, TemplateMissingError
from dali.iterative import ProteinError, default_workers, domain_segments, read_candidates, run_protein
from dali.scratch import JOB_LOCK, WORK_DIRNAME, clean_stale_scratch, hold_job_lock, scratch_prefix_of

FAKE_DALI = Path(__file__).parent / "fake_dalilite" / "dali.pl"

# DaliLite.v5 pairwise output, written by the format of its manual (section 5.2): 2 alignment blocks,
# a second hit that must be ignored, lower case = not equivalent.
DALI_TEXT = """# Job: test
# Query: mol1A
# No:  Chain   Z    rmsd lali nres  %id PDB  Description
   1:  mol2-A 21.3  0.6   25    27   58   CYTOCHROME C

# Pairwise alignments

No 1: Query=mol1A Sbjct=mol2A Z-score=21.3

DSSP  lllllLLHHHHHHHHHHHLLL
Query tefkaGSAKKGATLFKTRCLQ   60
ident      |   ||   |
Sbjct -----GDVAKGKKTFVQKCAQ   55
DSSP  -----LLHHHHHHHHHHHLLL

DSSP  HHHHHHHHHHhh
Query CHTVEKGGPHKv   72
ident |  |
Sbjct CHTIE-GGPNKl   66
DSSP  HHHHH-HHHHhh

No 2: Query=mol1A Sbjct=mol2A Z-score=3.1

Query AAAAAAAAAAAAAAAAAAAAAAAAA   60
Sbjct AAAAAAAAAAAAAAAAAAAAAAAAA   60

# Translation-rotation matrices
-matrix  "mol1-A mol2-A  U(1,.)   0.566226 -0.204607  0.798451          -20.185467"
-matrix  "mol1-A mol2-A  U(2,.)   0.686252  0.653596 -0.319172           15.243513"
-matrix  "mol1-A mol2-A  U(3,.)  -0.456559  0.728662  0.510496           10.256504"
"""


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("dali-examples")
    example_inputs.make(root)
    return root


@pytest.fixture
def shadow(tmp_path):
    """A directory shaped like a Snakemake shadow dir: <prefix>/shadow/tmpXXXX."""
    path = tmp_path / "scratch" / "shadow" / "tmpjob"
    path.mkdir(parents=True)
    return path


def run(examples, shadow, prefix, aligner=None, **kwargs):
    inputs = examples / "inputs"
    return run_protein(
        kwargs.pop("query", inputs / f"{prefix}.pdb"),
        kwargs.pop("hits", inputs / f"{prefix}_hits4Dali"),
        kwargs.pop("templates", examples / "ECOD70"),
        aligner or Aligner("tmalign", "TMalign", timeout=60),
        kwargs.pop("workers", 4),
        shadow / "c",
        shadow.parent.parent / "dali-template-cache",
        **kwargs,
    )


def blocks(text):
    return [line.split("\t") for line in text.splitlines() if line.startswith(">")]


def test_dali_parser_reads_first_hit_uppercase_pairs_z_and_matrix():
    ali = parse_dali_output(DALI_TEXT)
    assert ali.score == "21.3"
    # block 1: columns 6-21 upper case in both (16); block 2: CHTVE/CHTIE (5), K against a gap (0), GGPHK/GGPNK (5)
    assert ali.pairs[:3] == [(6, 1), (7, 2), (8, 3)]
    assert (17, 12) in ali.pairs and (21, 16) in ali.pairs
    assert len(ali.pairs) == 16 + 5 + 5 and (28, 22) in ali.pairs
    assert (ali.qlen, ali.slen) == (33, 27)
    assert ali.rotation[0] == ["0.566226", "-0.204607", "0.798451"]
    assert ali.translation == ["-20.185467", "15.243513", "10.256504"]


def test_dali_parser_no_hit_and_bad_output():
    headers_only = "# Job: test\n# Query: mol1A\n# No:  Chain   Z    rmsd lali nres  %id PDB  Description\n"
    assert parse_dali_output(headers_only) is None
    with pytest.raises(AlignerOutputError, match="-matrix"):
        parse_dali_output(DALI_TEXT.split("# Translation")[0])


def test_dali_command_line_is_dpams_with_short_relative_paths(tmp_path):
    real = tmp_path / "DaliLite.v5" / "bin" / "dali.pl"
    real.parent.mkdir(parents=True)
    real.write_text("")
    link = tmp_path / "dali.pl"
    link.symlink_to(real)
    cmd = dali_command(link)
    assert cmd[0] == str(real)  # FindBin needs the real path, not a symlink
    assert cmd[1:] == [
        "--pdbfile1",
        "../q.pdb",
        "--pdbfile2",
        "../t.pdb",
        "--dat1",
        "./",
        "--dat2",
        "./",
        "--outfmt",
        "summary,alignments,transrot",
    ]


def test_tmalign_parser_on_real_output(examples, tmp_path):
    import subprocess

    ecod = examples / "ECOD70"
    a, b = ecod / "000000101.pdb", ecod / "000000108.pdb"
    out = subprocess.run(
        ["TMalign", str(a), str(b), "-m", str(tmp_path / "m")], capture_output=True, text=True
    )
    ali = parse_tmalign_output(out.stdout, (tmp_path / "m").read_text())
    assert ali.score.startswith("TM=") and 0.5 < float(ali.score[3:]) <= 1
    assert len(ali.pairs) >= 90 and ali.qlen > 100 and ali.slen > 100
    assert len(ali.rotation) == 3 and len(ali.translation) == 3


def test_domain_segments_follow_dpams_gap_rule():
    # 100 residues: cutoff max(5, 5) = 5; a gap of 5 joins, 6 splits
    resids = list(range(1, 51)) + list(range(55, 80)) + list(range(86, 111))
    assert domain_segments(resids) == [(1, 79), (86, 110)]
    # 200 residues: cutoff 10; a gap of 9 joins
    assert domain_segments(list(range(1, 101)) + list(range(110, 210))) == [(1, 209)]


@pytest.mark.parametrize("aligner", ["tmalign", "dali"])
def test_two_domain_query_gives_two_hits_then_stops(examples, shadow, aligner):
    tool = Aligner("tmalign", "TMalign", 60) if aligner == "tmalign" else Aligner("dali", str(FAKE_DALI), 60)
    text, stats = run(examples, shadow, "AF-EXCYT2-F1", tool)
    heads = blocks(text)
    cytochrome = [h for h in heads if h[0].startswith(">000000102_")]
    assert [h[0] for h in cytochrome] == [">000000102_1", ">000000102_2"]
    # first hit on the whole 216-residue query, second on the 108 left; nothing left afterwards
    assert cytochrome[0][3] == "216" and cytochrome[1][3] == "108"
    assert stats["candidates"] == 5 and stats["aligner_calls"] == 8
    if aligner == "tmalign":
        assert all(h[1].startswith("TM=") for h in heads)
    else:
        assert all(float(h[1]) > 2 for h in heads)
    # pairs: first block maps query residues 1..108 region, second the 109..216 region
    lines = text.splitlines()
    start = lines.index("\t".join(cytochrome[1])) + 5
    second = [int(lines[i].split("\t")[0]) for i in range(start, start + int(cytochrome[1][2]))]
    assert min(second) > 108
    assert not (shadow / "c" / "000000102").exists()


def test_hits_file_block_format(examples, shadow):
    text, _ = run(examples, shadow, "AF-EXCYT1-F1")
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        head = lines[i].split("\t")
        assert head[0].startswith(">") and len(head) == 5
        assert [lines[i + k].split("\t")[0] for k in range(1, 5)] == ["rotation"] * 3 + ["translation"]
        n = int(head[2])
        assert n >= 20
        pairs = [tuple(map(int, line.split("\t"))) for line in lines[i + 5 : i + 5 + n]]
        assert len(pairs) == n
        i += 5 + n


def test_template_cache_hits_second_time_and_is_atomic(tmp_path):
    source = tmp_path / "ECOD70"
    source.mkdir()
    atom = "ATOM      1  CA  GLY A   1       1.000   2.000   3.000  1.00  0.00           C\n"
    (source / "000000001.pdb").write_text(atom)
    cache = TemplateCache(tmp_path / "cache", source)
    path, hit = cache.fetch("000000001")
    assert not hit and path.read_text() == atom
    assert cache.fetch("000000001") == (path, True)
    assert [p.name for p in cache.dir.iterdir()] == ["000000001.pdb"]  # no temporary left
    with pytest.raises(TemplateMissingError, match="000000002"):
        cache.fetch("000000002")
    assert [p.name for p in cache.dir.iterdir()] == ["000000001.pdb"]


def test_cache_counts_per_protein(examples, shadow):
    _, first = run(examples, shadow, "AF-EXCYT2-F1")
    _, again = run(examples, shadow, "AF-EXCYT2-F1")
    assert (first["cache_hits"], first["cache_misses"]) == (0, 5)
    assert (again["cache_hits"], again["cache_misses"]) == (5, 0)


def test_chainless_query_is_a_clear_error_for_dali(examples, shadow, tmp_path):
    query = tmp_path / "nochain.pdb"
    lines = (examples / "inputs" / "AF-EXCYT2-F1.pdb").read_text().splitlines()
    query.write_text(
        "\n".join(line[:21] + " " + line[22:] if line.startswith("ATOM") else line for line in lines)
    )
    with pytest.raises(ProteinError, match="no chain identifier"):
        run(examples, shadow, "AF-EXCYT2-F1", Aligner("dali", str(FAKE_DALI)), query=query)
    # TM-align does not need a chain: the same file works
    text, _ = run(examples, shadow, "AF-EXCYT2-F1", query=query)
    assert text.count(">000000102_") == 2


def test_empty_hits_list_gives_an_empty_result(examples, shadow, tmp_path):
    empty = tmp_path / "empty_hits4Dali"
    empty.write_text("")
    text, stats = run(examples, shadow, "AF-EXCYT2-F1", hits=empty)
    assert text == "" and stats["candidates"] == 0 and stats["hits"] == 0


def test_missing_template_fails_or_is_skipped(examples, shadow, tmp_path):
    hits = tmp_path / "hits4Dali"
    hits.write_text("000000102\n000999999\n")
    with pytest.raises(ProteinError, match="candidate 000999999.*does not exist"):
        run(examples, shadow, "AF-EXCYT2-F1", hits=hits)
    text, stats = run(examples, shadow, "AF-EXCYT2-F1", hits=hits, skip_missing_templates=True)
    assert stats["missing_templates"] == ["000999999"] and text.count(">000000102_") == 2


def test_hostile_uid_in_hits_list_is_rejected(examples, shadow, tmp_path):
    hits = tmp_path / "hits4Dali"
    hits.write_text("000000102\n../../etc/passwd\n")
    with pytest.raises(ProteinError, match="not a template uid"):
        read_candidates(hits)


def test_crashing_aligner_fails_the_protein_naming_the_candidate(examples, shadow, tmp_path):
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
    crash.chmod(0o755)
    with pytest.raises(ProteinError, match=r"candidate 0000001\d\d: CommandError.*exited 139"):
        run(examples, shadow, "AF-EXCYT2-F1", Aligner("tmalign", str(crash), timeout=30))


def test_hanging_aligner_times_out_instead_of_hanging(examples, shadow, tmp_path):
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nsleep 300\n")
    hang.chmod(0o755)
    start = time.monotonic()
    with pytest.raises(ProteinError, match="timed out after 2 s"):
        run(examples, shadow, "AF-EXCYT2-F1", Aligner("dali", str(hang), timeout=2))
    assert time.monotonic() - start < 60


def test_default_workers():
    assert default_workers(1) == 4 and default_workers(16) == 64 and default_workers(32) == 64


def test_scratch_prefix_comes_from_the_shadow_dir(shadow):
    assert scratch_prefix_of(shadow) == shadow.parent.parent.resolve()
    with pytest.raises(RuntimeError, match="shadow"):
        scratch_prefix_of(shadow.parent.parent)


def test_stale_scratch_cleaning_spares_running_young_and_foreign_dirs(tmp_path):
    prefix = tmp_path / "scratch"
    root = prefix / "shadow"
    names = ("tmpdead", "tmplive", "tmpyoung", "tmprecentdead", "tmpstarting", "tmpneverstarted", "tmpother")
    dead, live, young, recent_dead, starting, never_started, foreign = (root / name for name in names)
    half_removed, being_removed = root / "tmphalfremoved", root / "tmpbeingremoved"
    for path in (dead, live, young, recent_dead):
        (path / "logs" / "dali").mkdir(parents=True)
        (path / JOB_LOCK).write_text("pid=1\n")
    for path in (starting, never_started):  # Snakemake made them; the script has not locked yet
        (path / "logs" / "dali").mkdir(parents=True)
    # Snakemake's clean-up after a job removed the lock file, then a kill stopped it (the work dir
    # is made only under the lock); the second one is still being removed this second.
    for path in (half_removed, being_removed):
        (path / "logs" / "dali").mkdir(parents=True)
        (path / WORK_DIRNAME / "000000112").mkdir(parents=True)
    (foreign / "logs" / "trendy").mkdir(parents=True)
    partial = prefix / "dali-template-cache" / "ecod-x" / ".tmp.000000001.abc"
    partial.parent.mkdir(parents=True)
    partial.write_text("half")
    now = time.time()
    for path, age in [
        *((p, 7200) for p in (dead, live, foreign, dead / JOB_LOCK, live / JOB_LOCK, partial, never_started)),
        (recent_dead / JOB_LOCK, 60),  # a job killed a minute ago: its lock is free
        (starting, 600),  # a job still starting on a loaded node, ten minutes after its shadow dir
        (half_removed, 60),
    ]:
        os.utime(path, (now - age, now - age))
    with open(live / JOB_LOCK) as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a running job holds its lock
        removed = clean_stale_scratch(prefix, stale_after_s=3600, now=now)
    assert set(removed) == {dead, recent_dead, never_started, half_removed, partial}
    assert live.exists() and young.exists() and starting.exists() and foreign.exists()
    assert being_removed.exists()


def test_job_lock_is_held_while_running(shadow):
    from dali.scratch import lock_is_held

    with hold_job_lock(shadow) as lock:
        assert lock_is_held(lock)
    assert not lock_is_held(shadow / JOB_LOCK)


def test_crashing_worker_process_does_not_hang(examples, shadow, tmp_path):
    killer = tmp_path / "kill_parent.sh"
    # the aligner kills the pool worker that started it (as the OOM killer would)
    killer.write_text("#!/bin/sh\nkill -9 $PPID\nsleep 5\n")
    killer.chmod(0o755)
    with pytest.raises(ProteinError):
        run(examples, shadow, "AF-EXCYT2-F1", Aligner("tmalign", str(killer), timeout=30))


def test_command_error_is_the_shared_one():
    assert issubclass(CommandError, RuntimeError)


def test_examples_without_debian_doc_dirs_unpack_the_package_or_name_it(tmp_path, monkeypatch):
    """Slim images drop /usr/share/doc while dpkg still lists the package as installed."""
    real = {p: example_inputs.ROOT / d for p, d in example_inputs.PACKAGE_DIRS.items()}
    monkeypatch.setattr(example_inputs, "ROOT", tmp_path / "slim-root")
    monkeypatch.setattr(example_inputs, "UNPACKED", tmp_path / "unpacked")
    example_inputs.package_dir.cache_clear()

    def no_network(package, into):
        raise OSError("apt-get: Temporary failure resolving the archive")

    with pytest.raises(example_inputs.StructuresMissing, match="Debian package theseus-examples") as err:
        example_inputs.package_dir("theseus-examples", fetch=no_network)
    assert "apt-get download theseus-examples && dpkg-deb -x" in str(err.value)

    def unpack_from_this_machine(package, into):  # what `dpkg-deb -x` leaves
        import shutil

        shutil.copytree(real[package], into / example_inputs.PACKAGE_DIRS[package])

    for package in real:
        found = example_inputs.package_dir(package, fetch=unpack_from_this_machine)
        assert found == tmp_path / "unpacked" / package / example_inputs.PACKAGE_DIRS[package]
    # the generator then reads the unpacked structures (the cache answers for these packages now)
    made = example_inputs.make_templates(tmp_path / "ECOD70", ["d1cih__", "1a5z_A", "1zaa1"])
    assert sorted(p.name for p in (tmp_path / "ECOD70").iterdir()) == sorted(
        f"{u}.pdb" for u in made.values()
    )
    example_inputs.package_dir.cache_clear()
