"""Telemetry: what the host, its block devices, GPUs and the server itself did, on one clock.

One module per job:

- :mod:`.sampler` the sampler interface and counter arithmetic (wraps, resets);
- :mod:`.system` CPU shares, memory, swap, paging; :mod:`.disk` ``/proc/diskstats`` as
  ``iostat -x``; :mod:`.gpu` NVML; :mod:`.procio` the server's own I/O (``/proc/<pid>/io``,
  cgroup ``io.stat``); :mod:`.mapping` and :mod:`.scrape` server metrics (Prometheus
  text or TensorRT-LLM JSON) in canonical ``kv_*`` fields;
- :mod:`.sidecar` the sampling loop and spool, :mod:`.cli` the ``spark-harness sidecar``
  service, :mod:`.window` the cut of one point's window (``collect``);
- :mod:`.qos` storage QoS perturbation (fio, or :mod:`.iogen`), :mod:`.cache` the cold-cache
  step, :mod:`.devices` device resolution and facts, :mod:`.procguard` helpers that die
  with their parent.

Field names and the spool's row kinds are in :mod:`spark_harness.contract`.
"""
