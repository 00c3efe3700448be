"""Order workflow, first release (Python): reserve, wait for "go", charge."""

import os

from assay import workflow

workflow.connect(os.environ.get("ASSAY_ENGINE_URL"))


@workflow.define("Order")
def order(ctx, input):
    reserved = ctx.execute_activity("reserve", input)
    ctx.wait_for_signal("go")
    charged = ctx.execute_activity("charge", input)
    return {"path": "v1", "reserved": reserved, "charged": charged}


@workflow.activity("reserve")
def reserve(actx, input):
    return f"reserved {input['sku']}"


@workflow.activity("charge")
def charge(actx, input):
    return f"charged {input['sku']}"


if __name__ == "__main__":
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"))
