"""The preview: a page that shows what the service does and lets one try it (a demo tool, off by default)."""

from cds_service.preview.blueprint import register_preview

__all__ = ["register_preview"]
