"""Report: figures (matplotlib) and the HTML page; reads records, never measures."""


def build_report(directory):
    from bench.report.html import build_report as build

    return build(directory)
