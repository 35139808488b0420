/*
 * part_links — the program of each part's link check (CMakeLists.txt,
 * llmsim_part): it links every object of one part and nothing above it, so
 * that a call from a part into a part above it is an undefined reference.
 */
int main(void) { return 0; }
