"""Test-only: keep every Ray process of a multi-node test cluster on loopback.

Ray 2.60 replaces ``--node-ip-address 127.0.0.1`` with the machine's own address (so that other
machines could reach the node), and its only switch for loopback (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)
refuses a second node. The tests' 2-node cluster runs on one machine, where loopback reaches every
node, and must send nothing to any other address: this module, first on PYTHONPATH of the cluster's
processes only, makes Ray keep a loopback address as it is given.
"""

import importlib.abc
import importlib.machinery
import sys


def _patch(services) -> None:  # type: ignore[no-untyped-def]
    services.resolve_ip_for_localhost = lambda host: host if host else services.get_localhost_ip()
    services.get_node_ip_address = lambda address=None: "127.0.0.1"
    services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"


class _Finder(importlib.abc.MetaPathFinder):
    """Patches ``ray._private.services`` as soon as it is imported."""

    def find_spec(self, name, path, target=None):  # type: ignore[no-untyped-def]
        if name != "ray._private.services":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):  # type: ignore[no-untyped-def]
            original(module)
            _patch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _Finder())
