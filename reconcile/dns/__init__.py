"""Cluster DNS: the records CoreDNS's kubernetes plugin serves, answered from informers."""
