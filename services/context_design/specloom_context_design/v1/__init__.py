"""Definition v1 of the design family: frozen.

Kept, unchanged, only so sessions started under v1 finish under v1 (their
state, branches and commits follow these rules to the end; the v1 goldens
pin them). New work uses the v2 definitions, built on the kernel's step
library (``specloom.workflow.steps``). Nothing outside this package imports
it but the registry; delete it once no v1 session can still be running.
"""
