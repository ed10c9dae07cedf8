"""The agency-side SDK: what an agency's document system needs to talk to the hub.

``agency`` (connect, send, fetch, query), ``profile`` (a system's connection profile),
``inbox_store`` (where fetched items are kept on disk).
"""
