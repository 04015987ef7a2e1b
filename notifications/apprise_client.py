"""The one module that talks to Apprise: reading a channel's URL, hiding its secrets, refusing private hosts,
and sending.

Two schemes are ours. `djangomail://[address]` mails through Django's own mail (EMAIL_URL's transport); without an
address it is the owner's account address, filled in when it is sent. NOTIFY_WEBHOOK_URL becomes a `json://` (or
`jsons://`) URL whose keys are renamed to the payload it always had: {"event", "subject", "text", "user", "data"}.

Apprise reports a failure only through its logger: a send captures that log (warnings and up, never the payload,
which Apprise logs at debug) as the delivery's error, with anything from the URL scrubbed out. The `apprise`
logger does not propagate (config/settings.py LOGGING): what Apprise says reaches a delivery, not the server log.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from apprise.decorators import notify as apprise_plugin
from django.conf import settings
from django.core.mail import send_mail

ACCOUNT_MAIL = "djangomail://"
PRIVATE_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
# The JSON webhook's payload as it was before Apprise: Apprise's title and message renamed, its other keys dropped.
WEBHOOK_REMAP = ":title=subject&:message=text&:version=&:attachments=&:type="

apprise_logger = logging.getLogger("apprise")


@apprise_plugin(on="djangomail", name="Mail through the server (EMAIL_URL)")
def _django_mail(body: str, title: str, notify_type: str, meta: dict, *args: Any, **kwargs: Any) -> bool:
    address = f"{unquote(meta.get('user') or '')}@{meta.get('host') or ''}"
    if not meta.get("user") or not meta.get("host"):
        apprise_logger.warning("Mail not sent: no address to send it to.")
        return False
    try:
        send_mail(f"[trading] {title}", body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    except Exception as exc:  # the mail server's refusal is the delivery's error
        apprise_logger.warning("Mail not sent: %s", exc)
        return False
    return True


def account_mail(email: str) -> str:
    return f"djangomail://{email}"


def webhook_alias(url: str) -> str:
    """NOTIFY_WEBHOOK_URL (an http(s) URL) as the Apprise URL that posts today's payload to it. Its own query
    parameters stay query parameters (Apprise's `-name=value`)."""
    parts = urlsplit(url)
    scheme = "jsons" if parts.scheme == "https" else "json"
    kept = [f"-{name}={value}" for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    return f"{scheme}://{parts.netloc}{parts.path or '/'}?{'&'.join([*kept, WEBHOOK_REMAP])}"


def plugin_for(url: str) -> Any | None:
    """Apprise's service object for the URL, or None when Apprise does not know it."""
    try:
        return apprise.Apprise.instantiate(url)
    except Exception:  # a malformed URL is "not a URL Apprise knows", said by the caller
        return None


def mask(url: str) -> str:
    """The URL with its secrets hidden (Apprise's privacy form, without the query string), for any display."""
    if url == ACCOUNT_MAIL:
        return "mail to your account address"
    if url.startswith(ACCOUNT_MAIL):
        return url[:255]  # an address, no password: nothing to hide
    plugin = plugin_for(url)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme[:20]}://…"
    shown = plugin.url(privacy=True).split("?", 1)[0]
    # Apprise hides what it knows to be a secret; a path can be one too (a webhook's token in its path).
    scheme, _, rest = shown.partition("://")
    host, _, path = rest.partition("/")
    segments = [_hide(segment) for segment in path.split("/")]
    return f"{scheme}://{host}{'/' if path or rest.endswith('/') else ''}{'/'.join(segments)}"[:255]


def _hide(segment: str) -> str:
    if len(segment) <= 8 or "..." in segment or "*" in segment:
        return segment
    return f"{segment[:2]}…{segment[-1]}"


def refusal(url: str, *, allow_private: bool) -> str | None:
    """Why this URL cannot be a channel, in words, or None when it can."""
    if url == ACCOUNT_MAIL:
        return None
    if "://" not in url:
        return "Enter an Apprise URL such as tgram://bottoken/ChatID or discord://webhook_id/webhook_token."
    plugin = plugin_for(url)
    if plugin is None:
        scheme = url.split("://", 1)[0]
        return f"Apprise does not know the service '{scheme[:20]}://' or cannot read this URL."
    if not allow_private:
        for host in _hosts(plugin):
            if _is_private(host):
                return (
                    f"The host {host} is on a loopback or private network: refused (the server's administrator can "
                    "allow it with NOTIFY_ALLOW_PRIVATE_HOSTS=true)."
                )
    return None


@dataclass(frozen=True)
class Sent:
    ok: bool
    error: str = ""


def send(url: str, *, title: str, body: str, json_fields: dict | None = None) -> Sent:
    """Send once. `json_fields` are added to a JSON channel's payload (the webhook alias's event, user, data).
    Never raises: what went wrong is returned, scrubbed of the URL's secrets."""
    plugin = plugin_for(url)
    if plugin is None:
        return Sent(ok=False, error="Apprise cannot read this channel's URL any more.")
    if json_fields and hasattr(plugin, "payload_extras"):
        plugin.payload_extras = {**plugin.payload_extras, **json_fields}
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        try:
            ok = bool(plugin.notify(body=body, title=title))
        except Exception as exc:  # a plugin's own bug is this delivery's failure, not the caller's
            apprise_logger.warning("%s: %s", type(exc).__name__, exc)
            ok = False
        said = captured.getvalue().strip()
    return Sent(ok=ok, error="" if ok else scrub(said or "the service did not accept it", url))


def scrub(text: str, url: str) -> str:
    """`text` with every secret-looking piece of `url` (user, password, host tokens, path segments) replaced."""
    parts = urlsplit(url)
    pieces = {parts.username or "", parts.password or "", *re.split(r"[/@:]", parts.netloc), *parts.path.split("/")}
    for piece in sorted((p for p in pieces if len(p) >= 6), key=len, reverse=True):
        text = text.replace(piece, "•••").replace(unquote(piece), "•••")
    return text[:2000]


def _hosts(plugin: Any) -> list[str]:
    """The network hosts this URL makes Apprise connect to. A hosted service (Telegram, Discord, Pushover: a
    plugin with a fixed `notify_url`) puts a token where the host goes (tgram://123456789:AA.../): not a host."""
    if isinstance(getattr(type(plugin), "notify_url", None), str):
        return [host for host in [getattr(plugin, "smtp_host", None)] if isinstance(host, str) and host]
    hosts = [getattr(plugin, "host", None), getattr(plugin, "smtp_host", None)]
    return [host for host in hosts if isinstance(host, str) and host]


def _is_private(host: str) -> bool:
    """Loopback, private, link-local or reserved: an IP in any spelling, a local name, or a name resolving to one."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(PRIVATE_NAME_SUFFIXES):
        return True
    for address in _addresses(name):
        ip = ipaddress.ip_address(address)
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified:
            return True
    return False


def _addresses(name: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(name))]
    except ValueError:
        pass
    try:  # the spellings the C library accepts too: 2130706433, 0x7f.1, 127.1
        return [socket.inet_ntoa(socket.inet_aton(name))]
    except OSError:
        pass
    if "." not in name or not re.fullmatch(r"[a-z0-9.-]+", name):
        return []  # a service's token in the host's place (tgram://bottoken/...), not a name to look up
    try:
        return sorted({str(info[4][0]).split("%", 1)[0] for info in socket.getaddrinfo(name, None)})
    except (OSError, UnicodeError):
        return []  # not resolvable now: the send will fail on its own, and is checked again then
