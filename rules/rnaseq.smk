# Workflow rnaseq (placeholder until its issue lands).


def rnaseq_targets():
    return []


WORKFLOW_TARGETS["rnaseq"] = rnaseq_targets


rule rnaseq_all:
    input:
        lambda wildcards: rnaseq_targets(),
