"""Operating the resolver: everything around the data path, which never imports it.

The command line and its settings (:mod:`.cli`, :mod:`.options`, :mod:`.config`,
:mod:`.sections`), building one process and reloading it (:mod:`.runtime`, with the
setting-up of the shared tier, the encrypted listeners and the policy's sources:
:mod:`.sharedsetup`, :mod:`.encrypted`, :mod:`.policy_feeds`, :mod:`.policy_files`,
:mod:`.policy_config`), ``resolver-control`` (:mod:`.control`, :mod:`.negative`,
:mod:`.dump`), the counters shown (:mod:`.exposition`, :mod:`.metrics`), the trace and
its drawing (:mod:`.trace`, :mod:`.traced`, :mod:`.drawing`), the web view
(:mod:`.webview`, :mod:`.livestate`), logging (:mod:`.logs`), RFC 5011 probes
(:mod:`.autotrust`) and the upstream address policy (:mod:`.upstream`).
"""
