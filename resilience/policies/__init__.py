"""Pure decision functions of the controller: no I/O, no clock, no globals.

Each module owns one decision and states its units in its docstring:
`grid` (is the grid back?), `sync` (may the PCC close?), `vehicles` (which car
forms the island and how much each car supplies), `shedding` (which loads stay
on) and `endurance` (how long the energy lasts). Time is always passed in as
`now_s`, so every decision is repeatable in a test or a drill.
"""
