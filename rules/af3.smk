# Workflow af3 (placeholder until its issue lands).


def af3_targets():
    return []


WORKFLOW_TARGETS["af3"] = af3_targets


rule af3_all:
    input:
        lambda wildcards: af3_targets(),
