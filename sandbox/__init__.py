"""A local stand-in for x.com: real pages and network calls, platform rules, fault injection, a ground truth.

- `sandbox.server.SandboxServer(host, port, faults_file, state_file, seed)`: `.start() -> url`, `.stop()`, `.url`
- `sandbox.server.serve(host, port, faults_file, state_file)`: blocking (`pipeline sandbox serve`, `python -m sandbox`)
- `sandbox.client.SandboxAdmin(base_url)`: the admin API (`/__sandbox/`, loopback clients only)
- `sandbox.app.create_app(store)`: the Starlette app; `sandbox.state.Store`: the state (memory or SQLite file)
"""
