"""The base every other layer may use: child processes that never outlive the run
(:mod:`.process`), waiting on conditions with deadlines (:mod:`.waiting`), free loopback ports
(:mod:`.ports`), the cache and shipped-data folders (:mod:`.paths`) and the error types the user
sees (:mod:`.errors`). Imports nothing else of the package.
"""
