"""python -m assay.config  -> the README's settings tables."""

from assay.config.markdown import settings_markdown

print(settings_markdown())
