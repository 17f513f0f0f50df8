"""Report: figures (matplotlib) and the HTML page; reads records, never measures."""


def build_report(directory):
    """DIR/report.html: a fleet's page for a fleet folder (cvbench run --cluster), else a run's."""
    from bench.report.fleet import build_fleet_report, is_fleet
    from bench.report.html import build_report as build
    from bench.results import read_environment

    return (build_fleet_report if is_fleet(read_environment(directory)) else build)(directory)
