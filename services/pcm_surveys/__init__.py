"""The surveys service: survey collections and responses on the six drivers (work in progress:
today the validation of one item; the service, its store and the survey KPIs come next)."""
