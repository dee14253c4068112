/*
 * fatbin_kernels.c: lists what the CUDA backend library's fat binary holds,
 * without the CUDA toolkit's cuobjdump: one line "sm_XX name" per function
 * of each architecture's machine code (ELF cubin), and "ptx compute_XX" per
 * PTX image. Used by cuda/list_kernels.sh (`make cuda-kernels`).
 *
 * The fat binary is the .nv_fatbin section: containers (magic 0xBA55ED50,
 * u16 version, u16 header size, u64 size) of entries (u16 kind: 1 PTX,
 * 2 ELF; u16 version; u32 header size; u64 payload size; the architecture
 * as a u32 at byte 28). Cubins are not compressed by default (PTX is, and
 * only its presence is reported).
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FATBIN_MAGIC 0xBA55ED50u

static int fail(const char *message, const char *detail) {
    fprintf(stderr, "fatbin_kernels: %s%s%s\n", message, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static uint64_t read_u64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t read_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Prints the function symbols of one cubin; false when it is not a sane ELF64. */
static int list_cubin(const unsigned char *elf, uint64_t size, unsigned arch) {
    Elf64_Ehdr header;
    if (size < sizeof header) return 0;
    memcpy(&header, elf, sizeof header);
    if (memcmp(header.e_ident, ELFMAG, SELFMAG) != 0 || header.e_ident[EI_CLASS] != ELFCLASS64) return 0;
    if (header.e_shoff + (uint64_t)header.e_shnum * sizeof(Elf64_Shdr) > size) return 0;
    for (unsigned i = 0; i < header.e_shnum; i++) {
        Elf64_Shdr symtab;
        memcpy(&symtab, elf + header.e_shoff + i * sizeof(Elf64_Shdr), sizeof symtab);
        if (symtab.sh_type != SHT_SYMTAB || symtab.sh_link >= header.e_shnum) continue;
        Elf64_Shdr strtab;
        memcpy(&strtab, elf + header.e_shoff + symtab.sh_link * sizeof(Elf64_Shdr), sizeof strtab);
        if (symtab.sh_offset + symtab.sh_size > size || strtab.sh_offset + strtab.sh_size > size) return 0;
        for (uint64_t at = 0; at + sizeof(Elf64_Sym) <= symtab.sh_size; at += sizeof(Elf64_Sym)) {
            Elf64_Sym symbol;
            memcpy(&symbol, elf + symtab.sh_offset + at, sizeof symbol);
            if (ELF64_ST_TYPE(symbol.st_info) != STT_FUNC || symbol.st_name >= strtab.sh_size) continue;
            const char *name = (const char *)elf + strtab.sh_offset + symbol.st_name;
            if (!memchr(name, '\0', strtab.sh_size - symbol.st_name)) continue;
            printf("sm_%u %s\n", arch, name);
        }
    }
    return 1;
}

/* Walks the containers of the .nv_fatbin section. */
static int list_fatbin(const unsigned char *data, uint64_t size) {
    uint64_t position = 0;
    int containers = 0;
    while (position + 16 <= size) {
        if (read_u32(data + position) != FATBIN_MAGIC) {
            position += 8; /* containers are 8-byte aligned; skip padding */
            continue;
        }
        unsigned header_size = (unsigned)data[position + 6] | (unsigned)data[position + 7] << 8;
        uint64_t body = read_u64(data + position + 8);
        uint64_t entry = position + header_size, end = position + header_size + body;
        if (end > size) return fail("truncated fat binary container", NULL);
        while (entry + 32 <= end) {
            unsigned kind = (unsigned)data[entry] | (unsigned)data[entry + 1] << 8;
            uint32_t entry_header = read_u32(data + entry + 4);
            uint64_t payload = read_u64(data + entry + 8);
            unsigned arch = read_u32(data + entry + 28);
            if (entry + entry_header + payload > end) return fail("truncated fat binary entry", NULL);
            if (kind == 1) {
                printf("ptx compute_%u\n", arch);
            } else if (kind == 2) {
                if (!list_cubin(data + entry + entry_header, payload, arch))
                    printf("sm_%u <unreadable cubin: compressed?>\n", arch);
            }
            entry += entry_header + payload;
        }
        containers++;
        position = end;
    }
    if (containers == 0) return fail("no fat binary container found", NULL);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return fail("usage: fatbin_kernels LIBRARY", NULL);
    FILE *file = fopen(argv[1], "rb");
    if (!file) return fail("cannot open", argv[1]);
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *image = length > 0 ? malloc((size_t)length) : NULL;
    if (!image || fread(image, 1, (size_t)length, file) != (size_t)length) {
        fclose(file);
        free(image);
        return fail("cannot read", argv[1]);
    }
    fclose(file);
    int status = -1;
    Elf64_Ehdr header;
    if ((size_t)length >= sizeof header) {
        memcpy(&header, image, sizeof header);
        uint64_t names_at = header.e_shoff + (uint64_t)header.e_shstrndx * sizeof(Elf64_Shdr);
        if (memcmp(header.e_ident, ELFMAG, SELFMAG) == 0 && names_at + sizeof(Elf64_Shdr) <= (uint64_t)length) {
            Elf64_Shdr names;
            memcpy(&names, image + names_at, sizeof names);
            for (unsigned i = 0; i < header.e_shnum; i++) {
                Elf64_Shdr section;
                memcpy(&section, image + header.e_shoff + i * sizeof(Elf64_Shdr), sizeof section);
                if (names.sh_offset + section.sh_name >= (uint64_t)length) continue;
                if (strcmp((const char *)image + names.sh_offset + section.sh_name, ".nv_fatbin") != 0) continue;
                if (section.sh_offset + section.sh_size > (uint64_t)length) break;
                status = list_fatbin(image + section.sh_offset, section.sh_size);
                break;
            }
        }
    }
    free(image);
    return status < 0 ? fail("no .nv_fatbin section in", argv[1]) : status;
}
