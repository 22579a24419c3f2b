"""WorkChains of aiida-chimes: reference labelling (xTB or VASP) now; fitting and active learning later."""
