# One Snakemake package, five workflows. This file is the table of contents:
# each workflow lives in rules/<name>.smk, its logic in scripts/<name>/, its
# config section in config/config.yaml (validated by config/schemas/<name>.schema.yaml).
#
#   snakemake --profile profiles/local                # every workflow enabled in config
#   snakemake --profile profiles/local trendy_all     # one workflow
#   snakemake --profile profiles/slurm -n             # dry run on the cluster profile
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"


rule all:
    default_target: True
    input:
        enabled_targets,


include: "rules/af3.smk"
include: "rules/rnaseq.smk"
include: "rules/trendy.smk"
include: "rules/llc.smk"
include: "rules/dali.smk"
