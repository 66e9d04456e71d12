plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

// The ncnn release to link: set once, in gradle.properties (edgekit.ncnnVersion).
val ncnnVersion: String = providers.gradleProperty("edgekit.ncnnVersion").get()
val ncnnZipSha256: String = providers.gradleProperty("edgekit.ncnnZipSha256").getOrElse("")

android {
    namespace = "io.edgekit.demo"
    compileSdk = 35
    // NDK r27c and the SDK's CMake 3.22.1 (installed with the SDK manager: see README.md).
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "io.edgekit.demo"
        minSdk = 24 // Vulkan 1.0 is guaranteed from API 24 on devices that have it
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"

        ndk {
            // ncnn's Android prebuilt ships these ABIs; edgekit targets 64-bit ARM phones first.
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
        externalNativeBuild {
            cmake {
                cppFlags += listOf("-std=c++17", "-fexceptions", "-frtti")
                arguments += listOf(
                    "-DANDROID_STL=c++_shared",
                    "-DEDGEKIT_NCNN_VERSION=$ncnnVersion",
                    "-DEDGEKIT_NCNN_ZIP_SHA256=$ncnnZipSha256",
                )
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug") // a demo: installable without a keystore
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }

    androidResources {
        // Weights are stored, not deflated: the C++ loader reads them straight from the APK
        // (AAsset_getBuffer) and `edgekit bundle` reports the APK size on that basis.
        noCompress += listOf("bin")
    }

    buildFeatures {
        viewBinding = true
    }
}

dependencies {
    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.appcompat)
    implementation(libs.androidx.activity.ktx)
    implementation(libs.androidx.lifecycle.runtime.ktx)
    implementation(libs.material)
    implementation(libs.camerax.core)
    implementation(libs.camerax.camera2)
    implementation(libs.camerax.lifecycle)
    implementation(libs.kotlinx.coroutines.android)
}
