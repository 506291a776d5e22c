# Workflow trendy (placeholder until its issue lands).


def trendy_targets():
    return []


WORKFLOW_TARGETS["trendy"] = trendy_targets


rule trendy_all:
    input:
        lambda wildcards: trendy_targets(),
