"""RNA-seq batch: per-run download with verification, kallisto quantification, merge.

Modules: ``samples`` (sample sheet and download sources), ``fetch`` (HTTP/file transfer with resume
and checks), ``sra`` (SRA object → FASTQ with sra-tools), ``download`` (one run, first source that
works), ``quantify`` (kallisto and its read-count check), ``merge`` (matrices, QC table and plot),
``simulate`` (reads with known abundances), ``http_fixture`` (a loopback server for tests, the
benchmark and the demo, ENA's filereport included), ``example_inputs`` (the demo's inputs),
``ena`` (accessions to a sample sheet through ENA's filereport), ``disk_slots`` (the cap on runs
whose FASTQs are on disk), ``check`` (fails the workflow naming failed runs), ``genes`` (gene-level
matrices), ``multiqc_report`` (MultiQC's kallisto report), ``demo_ena`` (runs the demo's loopback ENA).
"""
