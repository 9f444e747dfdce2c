"""`ffrtmp`, the command line for TranscodeJobs (also the kubectl plugin `kubectl transcode`).

Built on the contract package `ffrtmp_api` and the kubernetes client only: it imports neither the operator
nor kopf, so a CLI-only install (`pip install ffrtmp`) stays light. Entry point: `ffrtmp_cli.main:main`.
"""
