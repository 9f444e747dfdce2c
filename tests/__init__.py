"""ffrtmp's tests: unit/ (pure logic), integration/ (a real kube-apiserver + etcd), e2e/ (plus ffmpeg, agents
and other real servers). Shared helpers live in tests/support (import them: `from tests.support import ...`);
fixtures live in the conftest.py files.
"""
