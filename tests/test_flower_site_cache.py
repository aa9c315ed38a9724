"""A ClientApp process keeps the built sites (compiled programs) of its recent runs only:
one that served run after run would otherwise keep every run's executables mapped."""
from types import SimpleNamespace


def test_sites_of_old_runs_are_dropped(monkeypatch):
    from fedpsyau_jax.federated.flower import client_app, site

    built = []
    monkeypatch.setattr(site, "make_site", lambda node, spec: built.append(node["partition-id"]) or object())
    monkeypatch.setattr(site, "configure_compilation_cache", lambda node: None)
    monkeypatch.setattr(client_app, "run_spec", lambda run_config: None)
    monkeypatch.setattr(client_app, "_SITES", {})

    def ctx(node: int, run: int):
        return SimpleNamespace(node_config={"partition-id": node}, run_config={"seed": run})

    a = client_app._site(ctx(0, 1))
    b = client_app._site(ctx(1, 1))
    assert client_app._site(ctx(0, 1)) is a and len(built) == 2          # built once per node and run
    client_app._site(ctx(0, 2))
    assert len(client_app._SITES) == 3                                    # two runs kept
    client_app._site(ctx(0, 3))                                           # a third run: run 1 goes
    assert {k[1] for k in client_app._SITES} == {(("seed", "2"),), (("seed", "3"),)}
    assert client_app._site(ctx(1, 1)) is not b and built[-1] == 1        # rebuilt when it returns
    assert client_app.KEEP_RUNS == 2
