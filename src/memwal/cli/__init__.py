"""The `mm` command line: argument parsing, output and exit codes over the public API.

`entry.run` is the console script: it tries the fast path of `mm search` (a running `mm serve`
answers) before importing the full command line (`app`).
"""
