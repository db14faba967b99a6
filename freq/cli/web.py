"""The dashboard command: `serve`.

Must not import dulwich, subprocess or pexpect, nor starlette or uvicorn at import time: the
web stack loads inside the command, so `--help` and `--version` stay click alone
(tests/test_cli_startup.py). Click is allowed only in freq/cli/*.
"""

from __future__ import annotations

import os

import click

from freq import ops
from freq.cli.base import cli, pass_app


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=int, default=8765, show_default=True, help="Port to listen on (0: any free)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@pass_app
def serve(app: ops.App, host: str, port: int, open_browser: bool) -> int:
    """Serve the dashboard: every factory live, its DLQ, costs and actions, on one page.

    Changing requests need `Authorization: Bearer TOKEN`: FREQ_TOKEN, or a random token
    printed at start; the page takes it from the printed URL's #token= part (never sent to
    the server, so never logged) and keeps it for the tab. Requests from another Origin are
    refused. Listening on an address other than loopback needs FREQ_TOKEN set.

    \b
    Example:
      git freq serve                                # http://127.0.0.1:8765/#token=...
      git freq serve --port 9000 --open
      FREQ_TOKEN=s3cret git freq serve --host 0.0.0.0
      curl -X POST -H "Authorization: Bearer s3cret" \\
           -d '{"reason": "CI is down"}' http://127.0.0.1:8765/api/factories/build/pause
    """
    from freq.web.server import is_loopback

    token = os.environ.get("FREQ_TOKEN", "")
    if not is_loopback(host) and not token:
        raise click.UsageError(
            f"--host {host} is reachable from other machines; set FREQ_TOKEN to listen there"
        )
    if not token:
        import secrets

        token = secrets.token_urlsafe(24)
    if port < 0 or port > 65535:
        raise click.UsageError(f"--port takes 0 to 65535, not {port}")
    app.config  # noqa: B018 - an invalid .frequency/ fails here, in one line, before binding
    from freq.web.server import serve as run_server

    def started(url: str) -> None:
        click.echo(f"serving {url}#token={token}")
        click.echo(f"token: {token}")
        click.echo("Ctrl-C stops it", err=True)
        if open_browser:
            import webbrowser

            webbrowser.open(f"{url}#token={token}")

    run_server(app, host=host, port=port, token=token, started=started)
    return 0
