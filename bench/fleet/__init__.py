"""Fleets: one scenario on every benchmark host of a Ray cluster (cvbench run --cluster).

host.py is what runs on each host; driver.py is the side that chose the hosts and keeps
the records. Ray is imported only by the driver, and only when --cluster is given.
"""
