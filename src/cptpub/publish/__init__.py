"""Publishing what ``dist/`` holds: the catalogue page (``catalogue``) and the authoring preview server (``preview``).

- :func:`cptpub.publish.catalogue.write_catalogue` turns ``dist/manifest.json`` into ``dist/index.html``: one
  static page that lists every edition with a search filter and sortable columns, working from disk.
- :func:`cptpub.publish.preview.run_preview` builds one code, serves ``dist/`` on 127.0.0.1 and rebuilds when the
  code's inputs change, reloading the open browser page.
"""
