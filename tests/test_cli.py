"""The command line's own surface: ``--version``, and a description that is whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hrnet_zoo import __version__
from hrnet_zoo.cli import DESCRIPTION, build_parser, main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(['--version'])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f'hrnet-zoo {__version__}'


def test_help_shows_the_whole_description_and_every_command(capsys):
    with pytest.raises(SystemExit):
        main(['--help'])
    out = ' '.join(capsys.readouterr().out.split())  # argparse wraps lines
    assert DESCRIPTION in out and DESCRIPTION.endswith('.')
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {'list', 'convert', 'publish', 'release', 'cards', 'demo', 'predict', 'export', 'bench'} <= set(commands)
    for name in commands:
        assert name in out


@pytest.mark.subprocess
def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, '-m', 'hrnet_zoo.cli', '--version'], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f'hrnet-zoo {__version__}'
