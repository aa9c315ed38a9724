"""FED-PsyAU on Flower: the simulator's algorithms, run by separate processes.

- ``wire``         pytree <-> named arrays (``flwr.app.ArrayRecord``), checked restore
- ``settings``     the run config (flat keys) -> the simulator's settings, model shapes
- ``site``         one site: own data, persistent state, one round of the simulator's code
- ``strategies``   ``FedPsyAUStrategy`` on ``flwr.serverapp.strategy.Strategy``: reply
                   screening and the algorithm's server half ``reduce``
- ``client_app``   the ClientApp (``app``): train / evaluate handlers
- ``server_app``   the ServerApp (``app``)
- ``dp``           client-level DP: Flower's client-side fixed clipping (mod + wrapper)
                   around ``FedPsyAUStrategy``, ε from the simulator's accountant
- ``secagg``       secure aggregation: Flower's SecAgg+ (legacy workflow), the
                   algorithm's ``reduce`` on the securely aggregated mean
- ``new_site``     a site held out of the federation (``fl.new_site``): identified, never
                   trained, scored after the last round as the simulator scores it
- ``stage1``       AU pre-training before the emotion rounds (``fl.pretrain_rounds``):
                   FedAvg rounds of the AU loss, or each site alone, as the simulator
- ``benchmark``    bytes per round per algorithm; the simulator's round time for a run config

Ways to run (docs/flower.md): ``flwr run .`` (simulation),
``scripts/flower_local_deployment.sh`` (SuperLink + one SuperNode per site on loopback),
and one ``flower-supernode`` per real site.

Needs the ``flower`` extra (``flwr[simulation]``); nothing else in the package imports it.
"""
