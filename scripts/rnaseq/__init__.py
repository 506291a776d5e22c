"""RNA-seq batch: per-run download with verification, kallisto quantification, merge.

Modules: ``samples`` (sample sheet and download sources), ``fetch`` (HTTP/file transfer with resume
and checks), ``sra`` (SRA object → FASTQ with sra-tools), ``download`` (one run, first source that
works), ``quantify`` (kallisto and its read-count check), ``merge`` (matrices, QC table and plot),
``simulate`` (reads with known abundances), ``http_fixture`` (a loopback server for tests and the
benchmark), ``example_inputs`` (the demo's inputs).
"""
