"""The complaints service: the Libro de Reclamaciones lifecycle, legal terms, overdue detection."""
