# Workflow llc (placeholder until its issue lands).


def llc_targets():
    return []


WORKFLOW_TARGETS["llc"] = llc_targets


rule llc_all:
    input:
        lambda wildcards: llc_targets(),
