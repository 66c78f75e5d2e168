// Tests of the System module. Each concern has its own file beside this one.
