"""The embedded demo: an Odyssey-compatible REST server with synthetic recordings.

Used by ``odyssey-data demo`` / ``serve-demo``, the notebooks and the tests, so the
whole export can run without an Odyssey account::

    from odyssey_data.demo import DemoServer, make_demo_catalog

    with DemoServer(make_demo_catalog(6)) as srv:
        print(srv.base_url, srv.api_key)
"""

from odyssey_data.demo.server import DEMO_API_KEY, DemoServer
from odyssey_data.demo.synth import DemoCatalog, DemoDefects, DemoRecording, make_demo_catalog

__all__ = [
    "DEMO_API_KEY",
    "DemoCatalog",
    "DemoDefects",
    "DemoRecording",
    "DemoServer",
    "make_demo_catalog",
]
