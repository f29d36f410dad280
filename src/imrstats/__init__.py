"""imrstats: reproducible analysis of Illness Management and Recovery (IMR) trials and evidence."""

__version__ = "0.1.0"
