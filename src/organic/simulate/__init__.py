"""The deployment simulator: simulated people (helpers and SafetyMix-style trolls) who chat with the real
server over HTTP and rate its replies sparsely. It is both the load test and the dry run of the loop."""
