"""flagd-testbed's daemon suite (gherkin/*.feature against flags/*.json), run in-process.

Scenarios that need a running flagd are deselected by the rules in ``testbed.DESELECTED``.
"""

from pytest_bdd import scenarios

from tests.flags.conformance.testbed import DAEMON_FEATURES

scenarios(str(DAEMON_FEATURES))
