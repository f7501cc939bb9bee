"""The kit's exception family: every error a user can cause, with what they need to fix it."""


class KpiError(Exception):
    """Base of every error the kit reports to a user (the CLI prints it without a traceback)."""


class DataContractError(KpiError):
    """The data source breaks the CRM data contract."""


class ParamsError(KpiError):
    """A parameter or scheme file is invalid."""


class ReportError(KpiError):
    """A report could not be executed or rendered."""
