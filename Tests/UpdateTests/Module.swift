// Tests of the Update module. Each concern has its own file beside this one.
