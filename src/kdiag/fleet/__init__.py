"""kdiag across an Ansible inventory: readiness (``fleet doctor``), configuration
(``fleet configure``), instance import, and remote dumps read by SFTP byte ranges.

Submodules are imported by what needs them (ansible-runner and asyncssh are an optional
extra, ``kdiag[fleet]``)."""

__all__: tuple[str, ...] = ()
