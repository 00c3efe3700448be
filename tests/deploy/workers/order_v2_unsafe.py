"""Order workflow, second release WITHOUT versioning (Python): a fraud check inserted after reserve."""

import os

from assay import workflow

workflow.connect(os.environ.get("ASSAY_ENGINE_URL"))


@workflow.define("Order")
def order(ctx, input):
    reserved = ctx.execute_activity("reserve", input)
    ctx.execute_activity("fraud_check", input)
    ctx.wait_for_signal("go")
    charged = ctx.execute_activity("charge", input)
    return {"path": "v2", "reserved": reserved, "charged": charged}


if __name__ == "__main__":
    workflow.listen(queue=os.environ.get("ASSAY_QUEUE", "default"))
