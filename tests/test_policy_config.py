"""The ``[[policy-zone]]`` and ``[[blocklist]]`` tables (resolver.ops.policy_config), read
through the configuration file: what they give, and one line with the file, the line and
the key for each mistake; the example in resolver.toml loads; resolver-control's policy
command without any policy."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from resolver.iterate.hints import parse_root_hints
from resolver.ops.config import Settings, SettingsError, load_settings
from resolver.ops.control import CommandError, execute, parse_request
from resolver.ops.policy_config import PolicySource
from resolver.ops.policy_files import sources_of
from resolver.ops.runtime import build_service
from resolver.policy import Override
from tests.fakes import HINTS_TEXT

EXAMPLE = Path(__file__).resolve().parent.parent / "resolver.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "resolver.toml"
    path.write_text(text)
    return path


def test_tables_in_order_with_their_defaults(tmp_path: Path) -> None:
    text = (
        '[[policy-zone]]\nname = "rpz.example"\nprimary = "192.0.2.53@5353"\n'
        '[[blocklist]]\nfile = "/lists/ads.txt"\naction = "null"\nede = "filtered"\nlog = false\n'
        '[[policy-zone]]\nname = "local.rpz."\nfile = "/x.rpz"\naction-override = "cname"\n'
        'cname = "garden.example"\nmax-entries = 10\n'
    )
    sources = sources_of(load_settings(write(tmp_path, text), {}))
    assert sources == (
        PolicySource("rpz", "rpz.example.", primary="192.0.2.53@5353"),
        PolicySource("rpz", "local.rpz.", file="/x.rpz", override=Override.CNAME,
                     cname="garden.example.", max_entries=10),
        PolicySource("blocklist", "ads.txt", file="/lists/ads.txt", override=Override.NULL,
                     ede=17, log=False),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [('[[policy-zone]]\nfile = "/x"\n', "line 1: [policy-zone]: policy zone 1: no name"),
     ('[[policy-zone]]\nname = "z."\n', "give either file or primary"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\nprimary = "192.0.2.1"\n',
      "give either file or primary"),
     ('[[policy-zone]]\nname = "z."\nprimary = "ns.example"\n', "'ns.example' is not an IP"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\naction = "nxdomain"\n',
      "unknown key 'action' (known: name, file, primary, action-override"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\naction-override = "block"\n',
      "action-override 'block' is not one of given, nxdomain"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\naction-override = "cname"\n',
      'cname is needed with action-override = "cname"'),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\nede = "forged"\n',
      "ede 'forged' is not one of blocked, censored, filtered, none"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\nlog = "yes"\n', "log must be true or false"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\nmax-entries = 0\n',
      "max-entries must be a whole number above 0"),
     ('[[policy-zone]]\nname = "z."\nfile = "/x"\n[[policy-zone]]\nname = "Z"\nfile = "/y"\n',
      "Z. is configured twice"),
     ('[policy-zone]\nname = "z."\n', "[[policy-zone]] is an array of tables"),
     ('[[blocklist]]\naction = "drop"\n', "blocklist 1: no file"),
     ('[[blocklist]]\nfile = "/x"\naction = "given"\n', "action 'given' is not one of nxdomain"),
     ('port = 2053\n[[blocklist]]\nfile = ""\n', "line 2: [blocklist]: blocklist 1: file must be a "
      "non-empty string")],
)  # fmt: skip
def test_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path, {})
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


def test_the_example_in_resolver_toml_loads(tmp_path: Path) -> None:
    shown = re.findall(r"^#  (\S.*)$", EXAMPLE.read_text(), re.MULTILINE)
    assert shown[0] == "[[policy-zone]]"
    settings = load_settings(write(tmp_path, "\n".join(shown)), {})
    assert [(s.kind, s.name) for s in sources_of(settings)] == [
        ("rpz", "rpz.example."), ("rpz", "local.rpz."), ("blocklist", "ads.hosts")]  # fmt: skip


def test_policy_command_without_policy() -> None:
    runtime = build_service(Settings(), parse_root_hints(HINTS_TEXT))
    assert runtime.service.policy is None
    assert parse_request("policy reload rpz.example.") == ("policy", "reload rpz.example.")
    assert asyncio.run(execute(runtime, "policy", "list")) == [
        "no policy zone or blocklist is configured"
    ]
    with pytest.raises(CommandError, match="no policy zone or blocklist is configured"):
        asyncio.run(execute(runtime, "policy", "reload rpz.example."))
